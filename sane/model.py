"""The SANE autoencoder: token embedding + 3-part positions -> transformer encoder -> latent
tokens -> transformer decoder -> reconstructed tokens, plus a contrastive projection head."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from sane.config import SaneConfig

__all__ = ["Encoder", "EncoderLayer", "PositionEmbedding", "ProjectionHead", "Sane"]


class PositionEmbedding(nn.Module):
    """Learned 3-part positions: ``[emb_token(n) + emb_layer(l), emb_row(k)]`` (SANE).

    Args:
        max_positions: exclusive bounds of (token index, layer index, row index).
        d_model: model width (even); each part embeds into ``d_model // 2``.
    """

    def __init__(self, max_positions: tuple[int, int, int], d_model: int) -> None:
        super().__init__()
        half = d_model // 2
        self.max_positions = tuple(int(m) for m in max_positions)
        self.token = nn.Embedding(self.max_positions[0], half)
        self.layer = nn.Embedding(self.max_positions[1], half)
        self.row = nn.Embedding(self.max_positions[2], half)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Add position embeddings to ``x`` ``[B, W, d_model]`` for ``pos`` ``[B, W, 3]``."""
        a = self.token(pos[..., 0]) + self.layer(pos[..., 1])
        return x + torch.cat([a, self.row(pos[..., 2])], dim=-1)


class ProjectionHead(nn.Module):
    """Maps a window of latent tokens (flattened) to the contrastive embedding (SANE)."""

    def __init__(self, latent_dim: int, window_size: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim * window_size, out_dim, bias=False),
            nn.LayerNorm(out_dim),
            nn.ReLU(),
            nn.Linear(out_dim, out_dim, bias=False),
            nn.LayerNorm(out_dim),
            nn.ReLU(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``[B, W, latent]`` -> ``[B, out_dim]``."""
        return self.net(z.flatten(1))


class EncoderLayer(nn.Module):
    """Pre-LayerNorm transformer layer: the math, parameters and state-dict keys of
    ``nn.TransformerEncoderLayer(norm_first=True, activation="gelu", batch_first=True)``.

    One packed q/k/v projection and ``scaled_dot_product_attention`` on ``[B, H, W, d/H]``
    views, without ``nn.MultiheadAttention``'s sequence-first transposes and copies; without
    padding no attention mask is built (SDPA's unmasked kernel). Under a CPU autocast
    (``precision="bf16"``) attention runs as two bfloat16 matmuls around a float32 softmax.

    Args:
        d_model: width.
        n_heads: attention heads (divide ``d_model``).
        dropout: dropout on attention weights, the MLP hidden layer and both residual branches.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        # registered in nn.TransformerEncoderLayer's order: same init draws, same keys;
        # self_attn only holds the parameters (in_proj_*, out_proj), its forward is not used
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, 4 * d_model)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(4 * d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def _attention(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        a = self.self_attn
        b, t, d = x.shape
        qkv = F.linear(x, a.in_proj_weight, a.in_proj_bias)
        q, k, v = qkv.view(b, t, 3, a.num_heads, d // a.num_heads).permute(2, 0, 3, 1, 4)
        mask = None if keep is None else keep[:, None, None, :]
        p = a.dropout if self.training else 0.0
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # bf16 matmuls, float32 softmax: ~2x faster than SDPA here (its CPU bf16 backward
            # is slower than float32)
            s = (q @ k.transpose(-2, -1)).float() * (q.shape[-1] ** -0.5)
            if mask is not None:
                s = s.masked_fill(~mask, float("-inf"))
            y = F.dropout(s.softmax(-1), p, self.training) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, mask, dropout_p=p)
        return a.out_proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[B, W, d]``; ``keep`` ``[B, W]`` bool, False for padding keys (None: none)."""
        x = x + self.dropout1(self._attention(self.norm1(x), keep))
        h = self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x)))))
        return x + self.dropout2(h)


class Encoder(nn.Module):
    """``n_layers`` :class:`EncoderLayer` copies and a final LayerNorm; the state-dict keys of
    ``nn.TransformerEncoder`` (``layers.{i}.*``, ``norm.*``), so old checkpoints load."""

    def __init__(self, cfg: SaneConfig) -> None:
        super().__init__()
        layer = EncoderLayer(cfg.d_model, cfg.n_heads, cfg.dropout)
        # one layer deep-copied, as nn.TransformerEncoder does (the same random draws)
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[B, W, d]`` -> ``[B, W, d]``; ``keep`` as in :meth:`EncoderLayer.forward`."""
        for layer in self.layers:
            x = layer(x, keep)
        return self.norm(x)


class Sane(nn.Module):
    """Sequential autoencoder for neural embeddings.

    Args:
        config: the SANE configuration (sizes).
        max_positions: exclusive bounds of the 3-part positions (from the zoo's layouts).
        n_architectures: size of the architecture id table (``config.arch_embedding`` only).
    """

    def __init__(
        self, config: SaneConfig, max_positions: tuple[int, int, int], n_architectures: int = 0
    ) -> None:
        super().__init__()
        c = config
        self.config = c
        self.tokenizer = nn.Linear(c.token_size, c.d_model)
        self.pe = PositionEmbedding(max_positions, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.encoder = Encoder(c)
        self.enc_comp = nn.Linear(c.d_model, c.latent_dim)
        self.dec_comp = nn.Linear(c.latent_dim, c.d_model)
        self.decoder = Encoder(c)
        self.detokenizer = nn.Linear(c.d_model, c.token_size)
        self.head = ProjectionHead(c.latent_dim, c.window_size, c.projection_dim)
        self.apply(self._init)
        scale = 0.02 / math.sqrt(2 * c.n_layers)  # GPT-2 scaled init of residual projections
        for name, p in self.named_parameters():
            if name.endswith(("linear2.weight", "out_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=scale)
        # made after the rest is initialised: every other parameter is the same with or
        # without it (and the default model's state dict is unchanged)
        self.arch: nn.Embedding | None = None
        if c.arch_embedding:
            if n_architectures < 1:
                raise ValueError("arch_embedding needs n_architectures >= 1")
            self.arch = nn.Embedding(n_architectures, c.d_model)
            nn.init.normal_(self.arch.weight, mean=0.0, std=0.02)

    @staticmethod
    def _init(module: nn.Module) -> None:
        """GPT-2 init: N(0, 0.02) weights, zero biases. ``nn.MultiheadAttention`` keeps its
        q/k/v input projection in a bare ``in_proj_weight`` parameter (not an ``nn.Linear``),
        so it is initialised here too (SANE's ``c_attn`` is an ``nn.Linear``)."""
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        elif isinstance(module, nn.MultiheadAttention):
            if module.in_proj_weight is not None:
                nn.init.normal_(module.in_proj_weight, mean=0.0, std=0.02)
            else:  # separate q/k/v weights (kdim/vdim != embed_dim; not used here)
                for w in (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight):
                    nn.init.normal_(w, mean=0.0, std=0.02)
            if module.in_proj_bias is not None:
                nn.init.zeros_(module.in_proj_bias)

    def _embed(
        self, h: torch.Tensor, pos: torch.Tensor, arch: torch.Tensor | None
    ) -> torch.Tensor:
        """Positions (and the architecture embedding) added to token features ``h``."""
        h = self.pe(h, pos)
        if self.arch is not None:
            if arch is None:
                raise ValueError("this SANE model has arch_embedding: pass arch ids [B]")
            h = h + self.arch(arch).unsqueeze(1)
        return self.drop(h)

    @staticmethod
    def _keep(valid: torch.Tensor | None) -> torch.Tensor | None:
        """The attention mask of keys to keep; None (no mask) when nothing is padding."""
        return None if valid is None or bool(valid.all()) else valid

    def encode(
        self, x: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor | None = None,
        arch: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Tokens ``[B, W, S]`` -> latent tokens ``[B, W, latent_dim]``.

        Args:
            x: weight tokens.
            pos: positions ``[B, W, 3]``.
            valid: ``[B, W]`` bool, False for padding tokens of sequences shorter than W.
            arch: ``[B]`` architecture ids (models with ``arch_embedding`` only).
        """
        h = self._embed(self.tokenizer(x), pos, arch)
        h = self.encoder(h, self._keep(valid))
        z = self.enc_comp(h)
        return z if valid is None else z * valid.unsqueeze(-1).to(z.dtype)

    def decode(
        self, z: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor | None = None,
        arch: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Latent tokens ``[B, W, latent_dim]`` -> reconstructed tokens ``[B, W, S]``."""
        h = self._embed(self.dec_comp(z), pos, arch)
        h = self.decoder(h, self._keep(valid))
        return self.detokenizer(h)

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor | None = None,
        arch: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(z, reconstruction, projection)``."""
        z = self.encode(x, pos, valid, arch)
        y = self.decode(z, pos, valid, arch)
        return z, y, self.head(z)
