"""SANE losses: masked reconstruction MSE and NT-Xent between two augmented views."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["masked_mse", "nt_xent", "sane_loss"]


def masked_mse(
    output: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    *,
    norm: str = "none",
    eps: float = 1e-4,
) -> torch.Tensor:
    """Mean squared error over the real (mask True) values only; padding is ignored.

    Args:
        output: reconstruction ``[..., S]``.
        target: target tokens, same shape.
        mask: bool, True where a real weight sits.
        norm: ``"batch"`` standardises output and target by the target's masked mean/std
            first (MultiZoo-SANE masked loss normalisation for heterogeneous zoos).
        eps: added to the std for ``norm="batch"``.
    """
    m = mask.to(output.dtype)
    n = m.sum().clamp(min=1.0)
    if norm == "batch":
        mean = (target * m).sum() / n
        std = (((target - mean) * m) ** 2).sum().div(n).sqrt() + eps
        output = (output - mean) / std
        target = (target - mean) / std
    elif norm != "none":
        raise ValueError(f"norm must be 'none' or 'batch', not {norm!r}")
    return (((output - target) * m) ** 2).sum() / n


def nt_xent(z_i: torch.Tensor, z_j: torch.Tensor, *, temperature: float = 0.1) -> torch.Tensor:
    """Normalised-temperature cross entropy (SimCLR) between two views ``[B, D]``.

    For each of the 2B embeddings its other view is the positive and the remaining 2B-2 are
    negatives; the loss is the mean cross entropy over all 2B anchors.
    """
    b = z_i.shape[0]
    z = F.normalize(torch.cat([z_i, z_j]).float(), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    labels = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, labels)


def sane_loss(
    *,
    proj_i: torch.Tensor,
    proj_j: torch.Tensor,
    recon: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    temperature: float,
    loss_norm: str = "none",
) -> dict[str, torch.Tensor]:
    """``gamma * NT-Xent + (1 - gamma) * masked MSE`` (SANE's GammaContrastReconLoss).

    Returns:
        ``{"loss", "recon", "contrast"}`` scalars.
    """
    recon_l = masked_mse(recon.float(), target.float(), mask, norm=loss_norm)
    contrast = nt_xent(proj_i, proj_j, temperature=temperature)
    return {
        "loss": gamma * contrast + (1.0 - gamma) * recon_l,
        "recon": recon_l,
        "contrast": contrast,
    }
