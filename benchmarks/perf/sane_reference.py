"""A plain SANE of the reference implementation's structure: the baseline SANE is scored against.

Run: ``python -m benchmarks.perf.sane_reference [--models 32 --epochs 3 --repeats 2]``

The reference (HSG-AIML/SANE) tokenises the whole zoo up front (one token per neuron: 48 tokens
of 201 values for CNN-s), then per sample draws a window (here the whole 48-token model), makes
two views with per-sample python augmentations (noise, random erasing), collates with the
default ``DataLoader`` collate and trains a nanoGPT-style autoencoder: GPT-2 blocks
(pre-LayerNorm, ``c_attn``/``c_proj`` attention, 4x GELU MLP) for encoder and decoder, a linear
compression to latent tokens, a projection head and ``gamma * NT-Xent + (1 - gamma) * MSE``.
:class:`ReferenceSane` and :class:`ReferenceWindows` rebuild that structure (not the reference
code) so its tokens/s can be measured beside :func:`sane.train` in the same process, one
thread, alternating runs (:func:`compare`). FLOPs of one training step of each are counted
with ``FlopCounterMode``. Tokens are counted as in ``sane_perf``: window x 2 views per sample.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.perf.common import emit

#: The issue's configuration (reference tokenisation of CNN-s, d_model 128, 2+2 layers).
CONFIG = {"token_size": 201, "window_size": 48, "d_model": 128, "n_heads": 4, "n_layers": 2,
          "latent_dim": 16, "batch_size": 32}


class Block(nn.Module):
    """GPT-2 block (nanoGPT): ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``; no causal mask."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, d] -> [B, T, d]``."""
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (u.view(b, t, self.heads, d // self.heads).transpose(1, 2) for u in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.c_proj(y)
        return x + self.mlp(self.ln_2(x))


class ReferenceSane(nn.Module):
    """Token embedding + positions -> GPT-2 encoder -> latent -> GPT-2 decoder -> tokens."""

    def __init__(self, *, token_size: int, window_size: int, d_model: int, n_heads: int,
                 n_layers: int, latent_dim: int, max_positions: tuple[int, int, int],
                 projection_dim: int = 30) -> None:
        super().__init__()
        half = d_model // 2
        self.tok_emb = nn.Linear(token_size, d_model)
        self.pos = nn.ModuleList(nn.Embedding(n, half) for n in max_positions)
        self.enc = nn.Sequential(*(Block(d_model, n_heads) for _ in range(n_layers)),
                                 nn.LayerNorm(d_model), nn.Linear(d_model, latent_dim))
        self.dec_in = nn.Linear(latent_dim, d_model)
        self.dec = nn.Sequential(*(Block(d_model, n_heads) for _ in range(n_layers)),
                                 nn.LayerNorm(d_model), nn.Linear(d_model, token_size))
        self.head = nn.Sequential(nn.Linear(latent_dim * window_size, projection_dim),
                                  nn.LayerNorm(projection_dim), nn.ReLU(),
                                  nn.Linear(projection_dim, projection_dim))

    def _pe(self, pos: torch.Tensor) -> torch.Tensor:
        a = self.pos[0](pos[..., 0]) + self.pos[1](pos[..., 1])
        return torch.cat([a, self.pos[2](pos[..., 2])], dim=-1)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reconstruction, projection)`` of tokens ``x [B, W, S]``."""
        pe = self._pe(pos)
        z = self.enc(self.tok_emb(x) + pe)
        return self.dec(self.dec_in(z) + pe), self.head(z.flatten(1))


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent over the two views."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(-math.inf)
    n = a.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, target)


class ReferenceWindows(torch.utils.data.Dataset):
    """Pre-tokenised zoo in memory; per-sample window, noise and erasing in python."""

    def __init__(self, tokens: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor,
                 window: int, seed: int = 0) -> None:
        self.tokens, self.mask, self.pos, self.window = tokens, mask, pos, window
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (1 + 0.1 * torch.randn(x.shape, generator=self.g))  # multiplicative noise
        if torch.rand(1, generator=self.g).item() < 0.5:  # random erasing of a rectangle
            h = int(torch.randint(1, x.shape[0] // 4 + 2, (1,), generator=self.g))
            w = int(torch.randint(1, x.shape[1] // 4 + 2, (1,), generator=self.g))
            i = int(torch.randint(0, x.shape[0] - h + 1, (1,), generator=self.g))
            j = int(torch.randint(0, x.shape[1] - w + 1, (1,), generator=self.g))
            x = x.clone()
            x[i : i + h, j : j + w] = 0
        return x * self.mask[: x.shape[0]]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        t = self.tokens.shape[1]
        s = int(torch.randint(0, t - self.window + 1, (1,), generator=self.g))
        w = self.tokens[i, s : s + self.window]
        return {"x1": self._view(w), "x2": self._view(w), "pos": self.pos[s : s + self.window]}


def tokenised_zoo(zoo: Path, token_size: int) -> dict[str, torch.Tensor]:
    """Every train row of a one-architecture zoo as ``[N, T, S]`` tokens (layer-normalised)."""
    from sane.data import ZooRows, token_plans
    from sane.train import fit_normalizer

    rows = ZooRows(zoo, "train")
    plan = token_plans(rows.manifest, token_size)[rows.architectures()[0]]
    norm = fit_normalizer(rows, rows.manifest)
    key = rows.architectures()[0]
    mean, std = norm.vectors(key, rows.manifest.architectures[key].layout)
    toks = []
    for _, w in rows.iter_weights():
        flat = torch.cat([(w - mean) / std, torch.zeros(1)])
        toks.append(flat[plan.index] * plan.mask)
    return {"tokens": torch.stack(toks), "mask": plan.mask.float(), "pos": plan.positions}


def train_reference(data: dict[str, torch.Tensor], *, epochs: int, config: dict[str, Any]
                    ) -> dict[str, float]:
    """Train :class:`ReferenceSane`; tokens/s after the first (warm-up) step."""
    c = config
    torch.manual_seed(0)
    maxpos = tuple(int(data["pos"][:, i].max()) + 1 for i in range(3))
    model = ReferenceSane(token_size=c["token_size"], window_size=c["window_size"],
                          d_model=c["d_model"], n_heads=c["n_heads"], n_layers=c["n_layers"],
                          latent_dim=c["latent_dim"], max_positions=maxpos)  # type: ignore[arg-type]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=3e-9)
    ds = ReferenceWindows(data["tokens"], data["mask"], data["pos"], c["window_size"])
    loader = torch.utils.data.DataLoader(ds, batch_size=c["batch_size"], shuffle=True)
    samples, t_first = 0, None
    for _ in range(epochs):
        for batch in loader:
            n = batch["x1"].shape[0]
            x = torch.cat([batch["x1"], batch["x2"]])
            pos = torch.cat([batch["pos"], batch["pos"]])
            recon, proj = model(x, pos)
            loss = 0.05 * nt_xent(proj[:n], proj[n:]) + 0.95 * F.mse_loss(recon, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if t_first is None:
                t_first = time.perf_counter()
            else:
                samples += n
    sec = time.perf_counter() - (t_first or time.perf_counter())
    return {"tokens_per_s": samples * c["window_size"] * 2 / max(sec, 1e-9), "seconds": sec}


def reference_step_flops(data: dict[str, torch.Tensor], config: dict[str, Any]) -> int:
    """Matmul FLOPs of one training step of :class:`ReferenceSane` (forward + backward)."""
    from benchmarks.perf.roofline import counted_flops

    c = config
    maxpos = tuple(int(data["pos"][:, i].max()) + 1 for i in range(3))
    model = ReferenceSane(token_size=c["token_size"], window_size=c["window_size"],
                          d_model=c["d_model"], n_heads=c["n_heads"], n_layers=c["n_layers"],
                          latent_dim=c["latent_dim"], max_positions=maxpos)  # type: ignore[arg-type]
    b = c["batch_size"]
    x = data["tokens"][:b, : c["window_size"]].repeat(2, 1, 1)
    pos = data["pos"][: c["window_size"]].expand(2 * b, -1, -1)

    def step() -> None:
        recon, proj = model(x, pos)
        (0.05 * nt_xent(proj[:b], proj[b:]) + 0.95 * F.mse_loss(recon, x)).backward()

    return counted_flops(step)


def train_ours(zoo: Path, work: Path, *, epochs: int, config: dict[str, Any],
               precision: str = "default") -> dict[str, float]:
    """Train :func:`sane.train` in the same configuration (``precision``: its
    ``SaneConfig.precision``); tokens/s after the first step."""
    from sane import SaneConfig, train
    from sane.data import ZooRows

    cfg = SaneConfig(**config, epochs=epochs, device="cpu", precision=precision)
    n_rows = len(ZooRows(zoo, "train"))
    marks: list[float] = []

    def cb(event: str, info: dict) -> None:
        if event == "step" and not marks:
            marks.append(time.perf_counter())

    train(zoo=zoo, out=work / f"ours-{time.monotonic_ns()}", config=cfg, progress=False,
          callback=cb, threads=torch.get_num_threads())
    sec = time.perf_counter() - marks[0]
    windows = n_rows * epochs - min(cfg.batch_size, n_rows)
    return {"tokens_per_s": windows * cfg.window_size * 2 / sec, "seconds": sec}


def ours_step_flops(zoo: Path, config: dict[str, Any]) -> int:
    """Matmul FLOPs of one training step of :func:`sane.train`'s model and loss."""
    from benchmarks.perf.roofline import counted_flops
    from sane import SaneConfig
    from sane.data import SaneWindows, ZooRows, arch_data, max_positions, token_plans
    from sane.model import Sane
    from sane.train import _forward, fit_normalizer

    cfg = SaneConfig(**config, device="cpu")
    rows = ZooRows(zoo, "train")
    archs = arch_data(rows.manifest, cfg, fit_normalizer(rows, rows.manifest))
    ds = SaneWindows(rows, archs, cfg, seed=0)
    batch = torch.utils.data.default_collate([ds[i] for i in range(cfg.batch_size)])
    model = Sane(cfg, max_positions(token_plans(rows.manifest, cfg.token_size)))
    return counted_flops(lambda: _forward(model, batch, cfg, "cpu")["loss"].backward())


def gemm_gflops(dtype: torch.dtype, *, n: int = 1024, repeats: int = 5) -> float:
    """Best GFLOP/s of an ``n x n`` matmul in ``dtype`` with the current thread count."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(dtype) for _ in range(2))
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def compare(*, models: int = 32, epochs: int = 3, repeats: int = 2,
            zoo: Path | None = None, config: dict[str, Any] | None = None,
            profile: bool = False, bf16: bool = True) -> dict[str, Any]:
    """Ours vs the reference-structured baseline, one thread, alternating runs (``profile``:
    also the top kernels of one more epoch of ours; ``bf16``: also ours with
    ``precision="bf16"`` in the same alternation, reported beside, not as the ratio)."""
    from benchmarks.perf.roofline import profile_summary, sgemm_gflops
    from benchmarks.perf.sane_perf import _build

    torch.set_num_threads(1)
    c = {**CONFIG, **(config or {})}
    with tempfile.TemporaryDirectory(prefix="perf-sane-ref-") as tmp:
        work = Path(tmp)
        if zoo is None:
            zoo = _build(work / "zoo", arch="cnn_s", models=models, epochs=3)
        data = tokenised_zoo(zoo, c["token_size"])
        ours, ref, half = [], [], []
        for _ in range(repeats):
            ours.append(train_ours(zoo, work, epochs=epochs, config=c))
            ref.append(train_reference(data, epochs=epochs, config=c))
            if bf16:
                half.append(train_ours(zoo, work, epochs=epochs, config=c, precision="bf16"))
        f_ours, f_ref = ours_step_flops(zoo, c), reference_step_flops(data, c)
        prof = profile_summary(lambda: train_ours(zoo, work, epochs=1, config=c)) if profile \
            else []
    peak = sgemm_gflops(n=1024)
    peak_bf16 = gemm_gflops(torch.bfloat16)
    best_h = max((r["tokens_per_s"] for r in half), default=float("nan"))
    best_o = max(r["tokens_per_s"] for r in ours)
    best_r = max(r["tokens_per_s"] for r in ref)
    tokens_per_step = c["batch_size"] * c["window_size"] * 2
    return {
        "config": c, "rows": int(data["tokens"].shape[0]), "epochs": epochs, "threads": 1,
        "ours_tokens_per_s": best_o, "reference_tokens_per_s": best_r, "ratio": best_o / best_r,
        "ours_all": [r["tokens_per_s"] for r in ours],
        "reference_all": [r["tokens_per_s"] for r in ref],
        "sgemm_gflops_1thread": peak,
        "ours_gflops": f_ours / tokens_per_step * best_o / 1e9,
        "reference_gflops": f_ref / tokens_per_step * best_r / 1e9,
        "ours_step_gflop": f_ours / 1e9, "reference_step_gflop": f_ref / 1e9,
        "bf16_tokens_per_s": best_h, "ratio_bf16": best_h / best_r,
        "bf16_all": [r["tokens_per_s"] for r in half], "bf16_gemm_gflops_1thread": peak_bf16,
        "profile": prof, "load_1min": os.getloadavg()[0],
    }  # fmt: skip


def print_table(r: dict[str, Any]) -> None:
    """Print ours vs the reference-structured baseline."""
    c = r["config"]
    print(f"{r['rows']} train rows, {c['window_size']} tokens of {c['token_size']}, d_model "
          f"{c['d_model']}, {c['n_layers']}+{c['n_layers']} layers, batch {c['batch_size']}, "
          f"1 thread, {r['epochs']} epochs (best of alternating runs); sgemm peak 1 thread "
          f"{r['sgemm_gflops_1thread']:.1f} GFLOP/s; load {r['load_1min']:.1f}")
    print(f"{'trainer':<22} {'tokens/s':>9} {'GFLOP/step':>11} {'GFLOP/s':>8} {'of peak':>8}")
    for name, key in (("ours (sane.train)", "ours"), ("reference structure", "reference")):
        gf = r[f"{key}_gflops"]
        print(f"{name:<22} {r[f'{key}_tokens_per_s']:>9,.0f} {r[f'{key}_step_gflop']:>11.2f} "
              f"{gf:>8.1f} {gf / r['sgemm_gflops_1thread']:>8.1%}")
    print(f"ours / reference structure: {r['ratio']:.2f}x")
    if r.get("bf16_all"):
        print(f"ours with precision=bf16 (not the default): {r['bf16_tokens_per_s']:,.0f} "
              f"tokens/s, {r['ratio_bf16']:.2f}x the reference structure (bf16 gemm peak "
              f"1 thread {r['bf16_gemm_gflops_1thread']:.1f} GFLOP/s)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-bf16", action="store_true", help="skip ours with precision=bf16")
    p.add_argument("--json", help="also write the results to this JSON file")
    a = p.parse_args(argv)
    return emit(compare(models=a.models, epochs=a.epochs, repeats=a.repeats, bf16=not a.no_bf16),
                print_table, a.json)


if __name__ == "__main__":
    main()
