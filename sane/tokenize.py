"""Weights <-> token sequences (SANE tokenisation) and per-layer normalisation.

A network's float state (a zoo layout: params and float buffers, in flat-vector order) is cut
into *layers*: a ``weight`` tensor together with its sibling ``bias`` (the bias becomes the last
column of each row), or any other tensor on its own (e.g. BatchNorm ``running_mean``). Each
layer is viewed as ``[rows, row_len]`` with one row per output neuron/channel (a conv
out-channel's kernel flattened, plus its bias). Rows longer than ``token_size`` are chunked and
every token is zero-padded to ``token_size``; a boolean mask marks the real values.

Every token has a 3-part position ``(token index in the sequence, layer index, row index within
the layer)``; the chunks of one row share the row index (as in SANE). Different architectures
give different sequence lengths for the same token size.

All of this is precomputed once per layout as a :class:`TokenPlan` (a gather index into the
flat vector), so tokenising a checkpoint is one gather and detokenising one scatter: exact in
both directions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch

from modelzoo.errors import ZooError
from modelzoo.storage.layout import LayerSpec, flatten_state_dict, layout_size, unflatten_weights

__all__ = [
    "LayerGroup",
    "Normalizer",
    "TokenPlan",
    "Tokens",
    "detokenize",
    "layer_groups",
    "neuron_token_size",
    "plan_tokens",
    "token_destandardize",
    "token_standardize",
    "tokenize",
    "tokens_to_vector",
]

#: Smallest per-token std :func:`token_standardize` divides by (constant tokens keep scale 1).
TOKEN_STD_MIN = 1e-8


@dataclass(frozen=True)
class LayerGroup:
    """One SANE layer: tensors viewed as ``[rows, row_len]`` (weight rows + bias column).

    Attributes:
        names: state_dict keys of the member tensors (weight first, then bias if any).
        rows: number of rows (output neurons/channels).
        row_len: values per row.
    """

    names: tuple[str, ...]
    rows: int
    row_len: int


def _sibling_bias(name: str) -> str | None:
    if name == "weight":
        return "bias"
    if name.endswith(".weight"):
        return name[: -len("weight")] + "bias"
    return None


def _rows_of(spec: LayerSpec) -> int:
    return spec.shape[0] if len(spec.shape) >= 1 else 1


def layer_groups(layout: Sequence[LayerSpec]) -> list[LayerGroup]:
    """Group a layout into SANE layers (``weight`` + sibling ``bias``; everything else alone)."""
    by_name = {s.name: s for s in layout}
    used: set[str] = set()
    groups: list[LayerGroup] = []
    for spec in layout:
        if spec.name in used:
            continue
        rows = _rows_of(spec)
        names = [spec.name]
        row_len = spec.numel // rows if rows else 0
        bias = _sibling_bias(spec.name)
        if bias is not None and bias in by_name and bias not in used:
            b = by_name[bias]
            if b.numel == rows and rows > 0:
                names.append(bias)
                row_len += 1
        used.update(names)
        if rows == 0 or row_len == 0:
            continue  # empty tensor: nothing to tokenise
        groups.append(LayerGroup(tuple(names), rows, row_len))
    return groups


def neuron_token_size(layouts: Sequence[Sequence[LayerSpec]]) -> int:
    """Token size that gives one token per neuron: the largest row length (fan-in + bias) over
    the layers of all ``layouts`` (SANE's CNN zoo runs: 201 values per token for CNN-s)."""
    sizes = [g.row_len for layout in layouts for g in layer_groups(layout)]
    if not sizes:
        raise ZooError("no layer with weights to tokenise")
    return max(sizes)


@dataclass(frozen=True)
class TokenPlan:
    """Precomputed tokenisation of one layout for one token size.

    Attributes:
        token_size: values per token.
        n_params: length of the flat weight vector.
        index: ``[T, token_size]`` int64 gather index into the flat vector extended by one
            trailing zero (index ``n_params`` is padding).
        mask: ``[T, token_size]`` bool, True where a real weight sits.
        positions: ``[T, 3]`` int64 ``(token index, layer index, row index in layer)``.
        element_layer: ``[n_params]`` int64 layer index of every flat element.
        groups: the layer groups, in order.
    """

    token_size: int
    n_params: int
    index: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor
    element_layer: torch.Tensor
    groups: tuple[LayerGroup, ...]

    @property
    def num_tokens(self) -> int:
        """Sequence length T."""
        return int(self.index.shape[0])

    @property
    def num_layers(self) -> int:
        """Number of SANE layers."""
        return len(self.groups)

    @property
    def max_positions(self) -> tuple[int, int, int]:
        """Exclusive upper bounds of the three position components."""
        if self.num_tokens == 0:
            return (0, 0, 0)
        return (self.num_tokens, self.num_layers, int(self.positions[:, 2].max()) + 1)


def _layout_key(layout: Sequence[LayerSpec]) -> tuple[tuple[str, tuple[int, ...], int], ...]:
    return tuple((s.name, tuple(s.shape), s.offset) for s in layout)


def plan_tokens(layout: Sequence[LayerSpec], token_size: int) -> TokenPlan:
    """Build (cached) the :class:`TokenPlan` of ``layout`` for ``token_size``."""
    if token_size < 1:
        raise ZooError(f"token_size must be >= 1, not {token_size}")
    return _plan_cached(_layout_key(layout), token_size)


@lru_cache(maxsize=64)
def _plan_cached(key: tuple[tuple[str, tuple[int, ...], int], ...], token_size: int) -> TokenPlan:
    layout = [LayerSpec(name=n, shape=sh, offset=o) for n, sh, o in key]
    n_params = layout_size(layout)
    by_name = {s.name: s for s in layout}
    groups = layer_groups(layout)
    pad = n_params  # index of the extra zero
    idx_parts: list[torch.Tensor] = []
    pos_parts: list[torch.Tensor] = []
    n_tok = 0
    for li, g in enumerate(groups):
        rows = g.rows
        cols: list[torch.Tensor] = []
        for name in g.names:
            s = by_name[name]
            per_row = s.numel // rows
            cols.append(
                s.offset
                + torch.arange(rows, dtype=torch.int64)[:, None] * per_row
                + torch.arange(per_row, dtype=torch.int64)[None, :]
            )
        row_idx = torch.cat(cols, dim=1)  # [rows, row_len]
        k = math.ceil(g.row_len / token_size)
        padded = torch.full((rows, k * token_size), pad, dtype=torch.int64)
        padded[:, : g.row_len] = row_idx
        idx_parts.append(padded.view(rows * k, token_size))
        t = rows * k
        pos = torch.empty(t, 3, dtype=torch.int64)
        pos[:, 0] = torch.arange(n_tok, n_tok + t)
        pos[:, 1] = li
        pos[:, 2] = torch.arange(rows).repeat_interleave(k)
        pos_parts.append(pos)
        n_tok += t
    if idx_parts:
        index = torch.cat(idx_parts)
        positions = torch.cat(pos_parts)
    else:
        index = torch.zeros(0, token_size, dtype=torch.int64)
        positions = torch.zeros(0, 3, dtype=torch.int64)
    return TokenPlan(
        token_size=token_size,
        n_params=n_params,
        index=index,
        mask=index != pad,
        positions=positions,
        element_layer=_element_layer_cached(key),
        groups=tuple(groups),
    )


@dataclass(frozen=True)
class Tokens:
    """A tokenised checkpoint.

    Attributes:
        tokens: ``[T, token_size]`` float32 (zero where padded).
        mask: ``[T, token_size]`` bool, True for real values.
        positions: ``[T, 3]`` int64.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor


def _as_vector(
    weights: torch.Tensor | Mapping[str, torch.Tensor], layout: Sequence[LayerSpec]
) -> torch.Tensor:
    if isinstance(weights, Mapping):
        return flatten_state_dict(weights, layout)
    vec = torch.as_tensor(weights, dtype=torch.float32)
    n = layout_size(layout)
    if vec.shape[-1] != n:
        raise ZooError(f"weight vector has {vec.shape[-1]} values but the layout needs {n}")
    return vec


def gather_tokens(vector: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Gather tokens ``[..., T, S]`` from flat vector(s) ``[..., P]`` with a plan index."""
    ext = torch.cat([vector, vector.new_zeros(*vector.shape[:-1], 1)], dim=-1)
    if vector.dim() == 1:
        return ext[index]
    return ext[..., index.reshape(-1)].reshape(*vector.shape[:-1], *index.shape)


def tokenize(
    weights: torch.Tensor | Mapping[str, torch.Tensor],
    layout: Sequence[LayerSpec],
    *,
    token_size: int,
    normalizer: Normalizer | None = None,
    architecture: str | None = None,
) -> Tokens:
    """Turn a state_dict (or flat vector in layout order) into SANE tokens.

    Args:
        weights: a state_dict containing the layout's tensors, or a flat ``[P]`` vector.
        layout: the zoo layer layout of the architecture.
        token_size: values per token (fixed per SANE model).
        normalizer: optional fitted per-layer normaliser applied first.
        architecture: architecture key of ``normalizer`` (required with it).
    """
    plan = plan_tokens(layout, token_size)
    vec = _as_vector(weights, layout)
    if normalizer is not None:
        if architecture is None:
            raise ZooError("tokenize(normalizer=...) also needs architecture=")
        vec = normalizer.normalize(vec, architecture, layout)
    tokens = gather_tokens(vec, plan.index)
    return Tokens(tokens=tokens, mask=plan.mask.clone(), positions=plan.positions.clone())


def tokens_to_vector(
    tokens: torch.Tensor,
    layout: Sequence[LayerSpec],
    *,
    token_size: int | None = None,
) -> torch.Tensor:
    """Scatter tokens ``[..., T, S]`` back into flat vector(s) ``[..., P]`` (padding dropped)."""
    size = token_size or int(tokens.shape[-1])
    plan = plan_tokens(layout, size)
    if tuple(tokens.shape[-2:]) != tuple(plan.index.shape):
        raise ZooError(
            f"tokens have shape {tuple(tokens.shape[-2:])} but this layout needs "
            f"{tuple(plan.index.shape)} (wrong architecture or token size?)"
        )
    lead = tokens.shape[:-2]
    flat_tok = tokens.reshape(*lead, -1)
    sel = plan.mask.reshape(-1)
    out = tokens.new_zeros(*lead, plan.n_params)
    out[..., plan.index.reshape(-1)[sel]] = flat_tok[..., sel]
    return out


def detokenize(
    tokens: torch.Tensor,
    layout: Sequence[LayerSpec],
    *,
    normalizer: Normalizer | None = None,
    architecture: str | None = None,
) -> dict[str, torch.Tensor]:
    """Turn tokens ``[T, S]`` back into a state_dict (float tensors of the layout).

    The inverse of :func:`tokenize` (bit-exact); ``normalizer`` undoes the normalisation.
    """
    vec = tokens_to_vector(tokens, layout)
    if normalizer is not None:
        if architecture is None:
            raise ZooError("detokenize(normalizer=...) also needs architecture=")
        vec = normalizer.denormalize(vec, architecture, layout)
    return {k: v.clone() for k, v in unflatten_weights(vec, layout).items()}


class Normalizer:
    """Per-layer standardisation ``(w - mean_l) / std_l``, fitted per architecture.

    Stats are kept per architecture key (the zoo's ``architecture`` column), so one normaliser
    serves a heterogeneous zoo. Fit it on the train split only (:meth:`fit`).

    Args:
        stats: ``{architecture: {"mean": [L], "std": [L]}}`` float64 tensors.
    """

    def __init__(self, stats: Mapping[str, Mapping[str, torch.Tensor]] | None = None) -> None:
        self.stats: dict[str, dict[str, torch.Tensor]] = {
            k: {"mean": v["mean"].to(torch.float64), "std": v["std"].to(torch.float64)}
            for k, v in (stats or {}).items()
        }
        self._vec_cache: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def fit(
        cls,
        batches: Iterable[tuple[str, torch.Tensor]],
        layouts: Mapping[str, Sequence[LayerSpec]],
        *,
        eps: float = 1e-8,
    ) -> Normalizer:
        """Fit from a stream of ``(architecture, weights [rows, P] or [P])`` batches.

        Sums are accumulated in float64, so the stream is never held in memory.
        """
        acc: dict[str, list[torch.Tensor]] = {}
        for arch, w in batches:
            if arch not in layouts:
                raise ZooError(f"no layout for architecture {arch!r}")
            el = _element_layer(layouts[arch])
            n_layers = int(el.max()) + 1 if el.numel() else 0
            w2 = torch.as_tensor(w).reshape(-1, el.numel()).to(torch.float64)
            s = acc.setdefault(
                arch,
                [torch.zeros(n_layers, dtype=torch.float64),
                 torch.zeros(n_layers, dtype=torch.float64),
                 torch.zeros(n_layers, dtype=torch.float64)],
            )
            col_sum = w2.sum(0)
            col_sq = (w2 * w2).sum(0)
            s[0].index_add_(0, el, col_sum)
            s[1].index_add_(0, el, col_sq)
            s[2].index_add_(0, el, torch.full_like(col_sum, float(w2.shape[0])))
        stats = {}
        for arch, (sm, sq, n) in acc.items():
            mean = sm / n.clamp(min=1)
            var = (sq / n.clamp(min=1) - mean * mean).clamp(min=0)
            std = var.sqrt()
            std = torch.where(std < eps, torch.ones_like(std), std)
            stats[arch] = {"mean": mean, "std": std}
        return cls(stats)

    def vectors(
        self, arch: str, layout: Sequence[LayerSpec]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-element mean and std ``[P]`` (float32) of architecture ``arch``."""
        if arch not in self.stats:
            raise ZooError(
                f"the normaliser has no statistics for architecture {arch!r} "
                f"(fitted on: {', '.join(sorted(self.stats)) or 'nothing'}); "
                "train SANE on a zoo that contains it, or use normalize='none'"
            )
        key = (arch, layout_size(layout))
        if key not in self._vec_cache:
            el = _element_layer(layout)
            st = self.stats[arch]
            if int(el.max()) + 1 != st["mean"].numel():
                raise ZooError(f"layout of {arch!r} does not match the normaliser statistics")
            self._vec_cache[key] = (st["mean"][el].float(), st["std"][el].float())
        return self._vec_cache[key]

    def normalize(
        self, vector: torch.Tensor, arch: str, layout: Sequence[LayerSpec]
    ) -> torch.Tensor:
        """Standardise a flat vector (or batch ``[..., P]``) of architecture ``arch``."""
        mean, std = self.vectors(arch, layout)
        return (vector - mean.to(vector.device)) / std.to(vector.device)

    def denormalize(
        self, vector: torch.Tensor, arch: str, layout: Sequence[LayerSpec]
    ) -> torch.Tensor:
        """Undo :meth:`normalize`."""
        mean, std = self.vectors(arch, layout)
        return vector * std.to(vector.device) + mean.to(vector.device)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """Tensors only (loadable with ``torch.load(weights_only=True)``)."""
        return {
            k: {"mean": v["mean"].clone(), "std": v["std"].clone()} for k, v in self.stats.items()
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Mapping[str, torch.Tensor]]) -> Normalizer:
        """Inverse of :meth:`state_dict`."""
        return cls(state)


def _element_layer(layout: Sequence[LayerSpec]) -> torch.Tensor:
    """Layer index of every flat element (independent of the token size)."""
    return _element_layer_cached(_layout_key(layout))


@lru_cache(maxsize=64)
def _element_layer_cached(key: tuple[tuple[str, tuple[int, ...], int], ...]) -> torch.Tensor:
    layout = [LayerSpec(name=n, shape=sh, offset=o) for n, sh, o in key]
    out = torch.full((layout_size(layout),), -1, dtype=torch.int64)
    by_name = {s.name: s for s in layout}
    for li, g in enumerate(layer_groups(layout)):
        for name in g.names:
            s = by_name[name]
            out[s.offset : s.offset + s.numel] = li
    return out


def token_standardize(
    tokens: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standardise every token by the mean/std of its own real (mask True) entries.

    The per-token normalisation of ``SaneConfig(token_norm=True)`` for heterogeneous zoos:
    ``y = (x - mean_t) / std_t`` on the real entries, padding stays 0. ``std_t`` is the
    population std over the token's real entries; below :data:`TOKEN_STD_MIN` (a constant or
    one-value token) it is 1, so the inverse stays exact.

    Args:
        tokens: ``[..., T, S]`` token values.
        mask: bool ``[..., T, S]``, True where a real weight sits.

    Returns:
        ``(standardised tokens, mean [..., T], std [..., T])``; :func:`token_destandardize`
        inverts it.
    """
    m = mask.to(tokens.dtype)
    n = m.sum(-1).clamp(min=1.0)
    mean = (tokens * m).sum(-1) / n
    var = (((tokens - mean.unsqueeze(-1)) * m) ** 2).sum(-1) / n
    std = var.sqrt()
    std = torch.where(std > TOKEN_STD_MIN, std, torch.ones_like(std))
    y = (tokens - mean.unsqueeze(-1)) / std.unsqueeze(-1) * m
    return y, mean, std


def token_destandardize(
    tokens: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """Inverse of :func:`token_standardize`: ``x = y * std_t + mean_t`` on real entries, 0 on
    padding. ``mean``/``std`` are ``[..., T]`` (broadcast against ``tokens`` ``[..., T, S]``)."""
    m = mask.to(tokens.dtype)
    return (tokens * std.unsqueeze(-1).to(tokens.dtype) + mean.unsqueeze(-1).to(tokens.dtype)) * m
