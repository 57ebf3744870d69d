"""SANE losses: masked reconstruction MSE and NT-Xent between two augmented views."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["masked_mse", "nt_xent", "recon_count", "sane_loss"]

RECON_NORMS = ("real", "all")


def recon_count(mask: torch.Tensor, *, over: str = "real",
                valid: torch.Tensor | None = None) -> torch.Tensor:
    """Number of entries the reconstruction MSE averages over (see :func:`masked_mse`).

    Args:
        mask: bool ``[..., W, S]``, True where a real weight sits.
        over: ``"real"``: the real weights; ``"all"``: every entry of the valid tokens.
        valid: bool ``[..., W]``, False for padding tokens (``"all"``; None: all valid).
    """
    if over == "real":
        return mask.sum().to(torch.float64)
    if over != "all":
        raise ValueError(f"over must be one of {RECON_NORMS}, not {over!r}")
    if valid is None:
        return torch.tensor(float(mask.numel()), dtype=torch.float64, device=mask.device)
    return valid.sum().to(torch.float64) * mask.shape[-1]


def masked_mse(
    output: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    *,
    norm: str = "none",
    over: str = "real",
    valid: torch.Tensor | None = None,
    eps: float = 1e-4,
) -> torch.Tensor:
    """Squared error of the real (mask True) values; padding values never add error.

    Args:
        output: reconstruction ``[..., W, S]``.
        target: target tokens, same shape.
        mask: bool, True where a real weight sits.
        norm: ``"batch"`` standardises output and target by the target's masked mean/std
            first (MultiZoo-SANE masked loss normalisation for heterogeneous zoos).
        over: the denominator: ``"real"`` averages over the real weights only; ``"all"``
            over every entry of the valid tokens, padding included (SANE multiplies the
            output by the mask and takes ``MSELoss(reduction="mean")``).
        valid: bool ``[..., W]``, False for padding tokens of short sequences (``"all"``
            only; None: every token is valid).
        eps: added to the std for ``norm="batch"``.
    """
    m = mask.to(output.dtype)
    n = recon_count(mask, over=over, valid=valid).to(output.dtype).clamp(min=1.0)
    if norm == "batch":
        mean = (target * m).sum() / m.sum().clamp(min=1.0)
        std = (((target - mean) * m) ** 2).sum().div(m.sum().clamp(min=1.0)).sqrt() + eps
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
    recon_norm: str = "real",
    valid: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """``gamma * NT-Xent + (1 - gamma) * masked MSE`` (SANE's GammaContrastReconLoss).

    ``loss_norm``, ``recon_norm`` (as ``over``) and ``valid`` go to :func:`masked_mse`.

    Returns:
        ``{"loss", "recon", "contrast"}`` scalars.
    """
    recon_l = masked_mse(recon.float(), target.float(), mask, norm=loss_norm, over=recon_norm,
                         valid=valid)
    contrast = nt_xent(proj_i, proj_j, temperature=temperature)
    return {
        "loss": gamma * contrast + (1.0 - gamma) * recon_l,
        "recon": recon_l,
        "contrast": contrast,
    }
