"""Neural functionals (Zhou et al., "Permutation Equivariant Neural Functionals", NeurIPS
2023) as property predictors: ``nfn-np`` and ``nfn-hnp``.

A network's weights become the ``nfn`` package's ``WeightSpaceFeatures`` (one weight and one
bias tensor per layer, one channel; :func:`to_wsfeat` is the one place our flat vectors and
layouts are converted). Convolution kernels keep their spatial dims as the "filter" dims the
NFN layers fold into channels; a Linear layer after a Flatten of a ``[C, H, W]`` activation
is read as ``[out, C, H, W]`` (one ``H x W`` filter per input channel), so permuting the
convolution's channels permutes the NFN's input exactly as
:mod:`modelzoo.permutation` does. Each tensor is divided by its standard deviation over the
train rows (one scalar per tensor: the symmetry is kept).

The network: ``layers`` equivariant layers (``NPLinear`` for ``nfn-np``, which treats input
and output neurons as permutable too; ``HNPLinear`` for ``nfn-hnp``, which keeps their order)
with ``channels`` channels and ReLU, the matching invariant pooling (``NPPool`` / ``HNPPool``:
means over the permuted axes), then an MLP head. Every hidden-neuron permutation of the input
network leaves the prediction unchanged (up to float rounding).

An NFN's layers are built for one layer layout, so on a zoo of several architectures one NFN
is trained per architecture (on that architecture's train rows, early-stopped on its
validation rows); an architecture without train rows (leave-one-architecture-out) is not
applicable. Training: :mod:`benchmarks.methods._trained`.

Settings (``NFN_DEFAULTS``, ``TRAIN_DEFAULTS``) were chosen on the validation split of
``digits-cnn_s-hyp`` (test accuracy and activation; fit on train, scored on validation, seed
0; ``scripts/metanet_search.py``, every run in ``docs/metanet-search.md``). At a fixed
budget of 1,000 train checkpoints a second equivariant layer did not help (NP: Kendall tau
0.712-0.728 / accuracy 0.643-0.663 with 2 layers of 8 or 16 channels, 0.722 / 0.686 with one
layer of 8) and cost 3-5x the time; more train checkpoints did (NP, one layer of 8: 0.768 /
0.715 with 2,000, 0.796 / 0.724 with 3,000; HNP, one layer of 16: 0.708 / 0.656 with 1,000,
0.772 / 0.721 with 2,000). So both use one equivariant layer and as many checkpoints as the
time budget allows: NP 3,000 (lr 3e-3), HNP 2,000 (lr 1e-3, whose 16 channels cost more).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import datasets
import torch
from torch import nn

from benchmarks.errors import MethodError
from benchmarks.methods._trained import Rows, TrainConfig, TrainedPredictor, row_keys
from benchmarks.methods._weights import ChainLayer, chain_layers
from benchmarks.registry import register_method
from modelzoo.storage import weights_tensor
from modelzoo.storage.manifest import Manifest

#: Network settings per mode (chosen on validation: benchmarks/methods/nfn.py docstring).
NFN_DEFAULTS: dict[str, dict[str, Any]] = {
    "np": {"channels": 8, "layers": 1, "head_hidden": 128, "dropout": 0.1},
    "hnp": {"channels": 16, "layers": 1, "head_hidden": 128, "dropout": 0.1},
}
#: Training budget per task and mode: :class:`~benchmarks.methods._trained.TrainConfig`'s
#: defaults (12 epochs, patience 3, 400 validation checkpoints) with these overrides.
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "np": {"lr": 3e-3, "max_train_rows": 3000},
    "hnp": {"lr": 1e-3, "max_train_rows": 2000},
}


def _nfn() -> Any:
    try:
        import nfn.common
        import nfn.layers
    except ImportError as e:  # pragma: no cover - nfn is a dependency
        raise MethodError(f"the NFN methods need the 'nfn' package ({e})") from None
    return nfn


def to_wsfeat(weights: torch.Tensor, layers: list[ChainLayer],
              scales: torch.Tensor | None = None) -> Any:
    """``[rows, P]`` flat weights as ``nfn.common.WeightSpaceFeatures``: per layer a weight
    ``[rows, 1, out, in]`` (conv / flatten: ``[rows, 1, out, in, h, w]``) and a bias
    ``[rows, 1, out]``, each divided by its entry of ``scales`` (two per layer) if given."""
    nfn = _nfn()
    n = weights.shape[0]
    ws, bs = [], []
    for i, layer in enumerate(layers):
        numel = layer.n_out * layer.n_in * layer.kernel[0] * layer.kernel[1]
        w = weights[:, layer.weight: layer.weight + numel].reshape(n, 1, *layer.shape)
        b = weights[:, layer.bias: layer.bias + layer.n_out].reshape(n, 1, layer.n_out)
        if scales is not None:
            w, b = w / scales[2 * i], b / scales[2 * i + 1]
        ws.append(w)
        bs.append(b)
    return nfn.common.WeightSpaceFeatures(ws, bs)


@dataclass
class _Prep:
    """One architecture's layers, NFN network spec and per-tensor scales."""

    arch: str
    layers: list[ChainLayer]
    scales: torch.Tensor
    spec: Any


class _WsRows:
    """Rows of one architecture as ``WeightSpaceFeatures`` minibatches."""

    def __init__(self, weights: torch.Tensor, prep: _Prep, keys: list[tuple[str, int]]) -> None:
        self.weights, self.prep, self.keys = weights, prep, keys

    def __len__(self) -> int:
        return self.weights.shape[0]

    def inputs(self, idx: torch.Tensor) -> Any:
        return to_wsfeat(self.weights[idx], self.prep.layers, self.prep.scales)


class InvariantNFN(nn.Module):
    """Equivariant NP / HNP layers, invariant pooling, MLP head.

    Args:
        spec: ``nfn.common.NetworkSpec`` of the input networks.
        mode: ``"np"`` or ``"hnp"``.
        n_outputs: outputs of the head.
        channels: channels of the equivariant layers.
        layers: number of equivariant layers.
        head_hidden: width of the head's hidden layer.
        dropout: dropout before the head's layers.
    """

    def __init__(self, spec: Any, mode: str, n_outputs: int, *, channels: int, layers: int,
                 head_hidden: int, dropout: float) -> None:
        super().__init__()
        nfn = _nfn()
        lay, pool = (nfn.layers.NPLinear, nfn.layers.NPPool) if mode == "np" else \
            (nfn.layers.HNPLinear, nfn.layers.HNPPool)
        mods: list[nn.Module] = []
        c_in = 1
        for _ in range(layers):
            mods += [lay(spec, c_in, channels), nfn.layers.TupleOp(nn.ReLU())]
            c_in = channels
        self.body = nn.Sequential(*mods)
        self.pool = pool(spec)
        width = pool.get_num_outs(spec) * c_in
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, head_hidden),
                                  nn.ReLU(), nn.Dropout(dropout), nn.Linear(head_hidden, n_outputs))

    def forward(self, wsfeat: Any) -> torch.Tensor:  # noqa: D102
        return self.head(self.pool(self.body(wsfeat)))


class NFNPredictor(TrainedPredictor):
    """An invariant NFN per architecture, trained per task.

    Args:
        mode: ``"np"`` (NPLinear / NPPool) or ``"hnp"`` (HNPLinear / HNPPool).
        network: overrides of the mode's :data:`NFN_DEFAULTS`.
        train: overrides of the mode's :data:`TRAIN_DEFAULTS`.
    """

    def __init__(self, mode: str = "np", network: dict[str, Any] | None = None,
                 train: TrainConfig | dict[str, Any] | None = None) -> None:
        if mode not in ("np", "hnp"):
            raise MethodError(f"NFN mode must be 'np' or 'hnp', not {mode!r}")
        super().__init__(train if isinstance(train, TrainConfig)
                         else {**TRAIN_DEFAULTS[mode], **(train or {})})
        self.mode = mode
        self.name = f"nfn-{mode}"
        unknown = set(network or {}) - set(NFN_DEFAULTS[mode])
        if unknown:
            raise MethodError(f"{self.name}: unknown network settings {sorted(unknown)}; "
                              f"choose from {sorted(NFN_DEFAULTS[mode])}")
        self.network = {**NFN_DEFAULTS[mode], **(network or {})}

    def settings(self) -> dict[str, Any]:
        """Equivariant layer type, channels, depth and head."""
        return {"layer": "NPLinear" if self.mode == "np" else "HNPLinear",
                "pool": "NPPool" if self.mode == "np" else "HNPPool",
                "reference": "Zhou et al. 2023 (nfn package)", **self.network}

    def prepare(self, train: datasets.Dataset, manifest: Manifest) -> _Prep:
        """Layers and per-tensor scales of the (one) architecture of ``train``."""
        (arch,) = set(train.unique("architecture"))
        entry = manifest.architectures[arch]
        layers = chain_layers(entry.layout, entry.name)
        w = weights_tensor(train).to(torch.float32)
        scales = []
        for layer in layers:
            numel = layer.n_out * layer.n_in * layer.kernel[0] * layer.kernel[1]
            for start, size in ((layer.weight, numel), (layer.bias, layer.n_out)):
                s = float(w[:, start: start + size].std()) if w.shape[0] else 1.0
                scales.append(s if s > 1e-8 else 1.0)
        spec = _nfn().common.network_spec_from_wsfeat(to_wsfeat(w[:1], layers))
        return _Prep(arch, layers, torch.tensor(scales), spec)

    def encode(self, dataset: datasets.Dataset, manifest: Manifest, prep: _Prep) -> Rows:
        """The rows' weights (one architecture) for :func:`to_wsfeat`."""
        return _WsRows(weights_tensor(dataset).to(torch.float32).clone(), prep,
                       row_keys(dataset))

    def build(self, prep: _Prep, n_outputs: int) -> nn.Module:
        """A fresh :class:`InvariantNFN` for ``prep``'s architecture."""
        return InvariantNFN(prep.spec, self.mode, n_outputs, **self.network)


for _mode in ("np", "hnp"):  # nfn-np, nfn-hnp
    register_method(f"nfn-{_mode}")(partial(NFNPredictor, _mode))
