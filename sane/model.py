"""The SANE autoencoder: token embedding + 3-part positions -> transformer encoder -> latent
tokens -> transformer decoder -> reconstructed tokens, plus a contrastive projection head."""

from __future__ import annotations

import math

import torch
from torch import nn

from sane.config import SaneConfig

__all__ = ["PositionEmbedding", "ProjectionHead", "Sane"]


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


def _transformer(cfg: SaneConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        d_model=cfg.d_model,
        nhead=cfg.n_heads,
        dim_feedforward=4 * cfg.d_model,
        dropout=cfg.dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(
        layer, cfg.n_layers, norm=nn.LayerNorm(cfg.d_model), enable_nested_tensor=False
    )


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
        self.encoder = _transformer(c)
        self.enc_comp = nn.Linear(c.d_model, c.latent_dim)
        self.dec_comp = nn.Linear(c.latent_dim, c.d_model)
        self.decoder = _transformer(c)
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
    def _pad_mask(valid: torch.Tensor | None) -> torch.Tensor | None:
        return None if valid is None or bool(valid.all()) else ~valid

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
        h = self.encoder(h, src_key_padding_mask=self._pad_mask(valid))
        z = self.enc_comp(h)
        return z if valid is None else z * valid.unsqueeze(-1).to(z.dtype)

    def decode(
        self, z: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor | None = None,
        arch: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Latent tokens ``[B, W, latent_dim]`` -> reconstructed tokens ``[B, W, S]``."""
        h = self._embed(self.dec_comp(z), pos, arch)
        h = self.decoder(h, src_key_padding_mask=self._pad_mask(valid))
        return self.detokenizer(h)

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor | None = None,
        arch: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(z, reconstruction, projection)``."""
        z = self.encode(x, pos, valid, arch)
        y = self.decode(z, pos, valid, arch)
        return z, y, self.head(z)
