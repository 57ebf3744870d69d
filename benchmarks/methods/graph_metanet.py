"""A graph metanetwork in the style of Neural Graphs (Kofinas et al., "Graph Neural Networks
for Learning Equivariant Representations of Neural Networks", ICLR 2024): ``graph-metanet``.

Each network becomes a graph (:class:`GraphTemplate`, one per architecture, built from the
layout by :func:`benchmarks.methods._weights.chain_layers`):

* **nodes** are neurons: the input channels (pixels for an MLP) and the output units of every
  Conv / Linear layer. Node features: the neuron's bias (0 for inputs), its type (input /
  hidden / output), its layer as relative depth and as one-hot indices from the input and
  from the output (clipped at 4), and a sinusoidal encoding of its index for input and
  output neurons only (their order has meaning; hidden neurons get none, so the graph does
  not depend on their order);
* **edges** are weights: one edge from input unit ``i`` to output unit ``o`` of each layer,
  whose features are the weight ``w[o, i]`` as a ``K x K`` kernel (a Linear weight in the
  centre, a convolution kernel zero-padded to ``K x K`` around the centre, the ``H x W`` block
  of a Linear layer after a Flatten of a ``[C, H, W]`` activation likewise), plus the layer
  kind (linear / conv / flatten). Messages flow from the input to the output; with
  ``reverse_edges`` every edge also runs backwards with a direction flag (both ways).

Weights and biases are divided by one scale each (their standard deviation over the train
rows): no per-layer statistics, which an unseen architecture would not have.

The network: node and edge encoders (Linear), ``layers`` rounds of message passing with
residual connections and LayerNorm (``torch_geometric`` ``PNAConv`` with mean / min / max /
std aggregation and degree scalers, or the cheaper ``GINEConv``), mean and max pooling over
all nodes, an MLP head. Message passing and pooling do not depend on node order, so a
hidden-neuron permutation of the input network leaves the prediction unchanged (up to float
rounding). One network reads every architecture of a zoo: it is trained on all train rows
together and also predicts architectures it never saw (leave-one-architecture-out).
ResNets (skip connections, BatchNorm) are out of scope and refused with an error.

Settings (``GRAPH_DEFAULTS``, ``TRAIN_DEFAULTS``) were chosen on validation splits
(``scripts/metanet_search.py``, every run in ``docs/metanet-search.md``): on
``digits-cnn_s-hyp`` at 1,000 train checkpoints, GINE with 32 channels (Kendall tau 0.685 /
activation accuracy 0.601) matched PNA (0.681 / 0.588) at a third of its time, 64 channels
or lr 3e-3 did not help; 2,000 checkpoints did (0.766 / 0.655), as on ``digits-hetero``
pooled (0.678 / 0.431 -> 0.722 / 0.474). Messages in both directions and input-to-output
only scored alike (mean of the four validation scores 0.654 vs 0.652: hyp 0.766 / 0.655 vs
0.724 / 0.646, hetero 0.722 / 0.474 vs 0.740 / 0.496) and one direction takes 60% of the
time, which the budget needs: so one direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch
from torch import nn

from benchmarks.errors import MethodError
from benchmarks.methods._trained import Rows, TrainConfig, TrainedPredictor, row_keys
from benchmarks.methods._weights import chain_layers, weights_by_architecture
from benchmarks.registry import register_method
from modelzoo.storage.layout import LayerSpec
from modelzoo.storage.manifest import Manifest

#: Network settings.
GRAPH_DEFAULTS: dict[str, Any] = {"hidden": 32, "layers": 3, "conv": "gine", "kernel": 5,
                                  "dropout": 0.0, "reverse_edges": False}
#: Training budget per task: :class:`~benchmarks.methods._trained.TrainConfig`'s defaults
#: (12 epochs, patience 3, lr 1e-3, 400 validation checkpoints) with these overrides.
TRAIN_DEFAULTS: dict[str, Any] = {"max_train_rows": 2000}
_KINDS = ("linear", "conv", "flatten")
_DEPTH = 5  # one-hot layer indices 0..4 (from the input and from the output), clipped
_FREQ = 4  # sinusoidal frequencies of input / output neuron indices
NODE_STATIC = 3 + 1 + 2 * _DEPTH + 2 * 2 * _FREQ  # type, depth, two one-hots, two encodings


def _index_code(n: int) -> torch.Tensor:
    """``[n, 2 * _FREQ]`` sinusoidal code of positions ``0..n-1`` scaled to ``(0, 1)``."""
    pos = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    k = torch.arange(1, _FREQ + 1, dtype=torch.float32)
    ang = math.pi * pos[:, None] * k[None, :]
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)


@dataclass(frozen=True)
class GraphTemplate:
    """The graph of one architecture; weight values are gathered per model.

    Attributes:
        n_nodes: neurons.
        node_static: ``[n_nodes, NODE_STATIC]`` fixed node features.
        bias_index: ``[n_nodes]`` flat-vector index of each node's bias (``P``: none).
        edge_index: ``[2, 2E]`` source / target nodes, forward edges then reversed ones.
        edge_type: ``[2E]`` layer kind (0 linear, 1 conv, 2 flatten), plus 3 on reversed
            edges.
        kernel_index: ``[E, K * K]`` flat-vector index of each forward edge's kernel entries
            (``P``: zero padding).
        n_params: ``P``.
    """

    n_nodes: int
    node_static: torch.Tensor
    bias_index: torch.Tensor
    edge_index: torch.Tensor
    edge_type: torch.Tensor
    kernel_index: torch.Tensor
    n_params: int


def graph_template(layout: list[LayerSpec], architecture: str, kernel: int) -> GraphTemplate:
    """The graph of an architecture with this layout (see the module doc).

    Raises:
        MethodError: not a chain of Conv / Linear layers, or a kernel larger than ``kernel``.
    """
    layers = chain_layers(layout, architecture)
    n_params = sum(s.numel for s in layout)
    widths = [layers[0].n_in, *(layer.n_out for layer in layers)]
    starts = np.cumsum([0, *widths])
    depth = len(layers)
    static, bias = [], []
    for li, n in enumerate(widths):
        f = torch.zeros(n, NODE_STATIC)
        f[:, 0 if li == 0 else (2 if li == depth else 1)] = 1.0
        f[:, 3] = li / depth
        f[:, 4 + min(li, _DEPTH - 1)] = 1.0
        f[:, 4 + _DEPTH + min(depth - li, _DEPTH - 1)] = 1.0
        code = 4 + 2 * _DEPTH
        if li == 0:
            f[:, code: code + 2 * _FREQ] = _index_code(n)
        if li == depth:
            f[:, code + 2 * _FREQ:] = _index_code(n)
        static.append(f)
        bias.append(torch.full((n,), n_params, dtype=torch.int64) if li == 0 else
                    torch.arange(n, dtype=torch.int64) + layers[li - 1].bias)
    src, dst, kinds, kidx = [], [], [], []
    for li, layer in enumerate(layers):
        kh, kw = layer.kernel
        if kh > kernel or kw > kernel:
            raise MethodError(f"architecture {architecture}: layer {li} has a {kh}x{kw} kernel; "
                              f"graph-metanet was set up for kernels up to {kernel}x{kernel} "
                              "(network setting 'kernel')")
        o, i = torch.meshgrid(torch.arange(layer.n_out), torch.arange(layer.n_in), indexing="ij")
        src.append(i.reshape(-1) + int(starts[li]))
        dst.append(o.reshape(-1) + int(starts[li + 1]))
        kinds += [_KINDS.index(layer.kind)] * (layer.n_out * layer.n_in)
        grid = torch.full((layer.n_out, layer.n_in, kernel, kernel), n_params, dtype=torch.int64)
        top, left = (kernel - kh) // 2, (kernel - kw) // 2
        flat = torch.arange(layer.n_out * layer.n_in * kh * kw, dtype=torch.int64) + layer.weight
        grid[:, :, top: top + kh, left: left + kw] = flat.view(layer.n_out, layer.n_in, kh, kw)
        kidx.append(grid.view(-1, kernel * kernel))
    s, d = torch.cat(src), torch.cat(dst)
    kind = torch.as_tensor(kinds, dtype=torch.int64)
    return GraphTemplate(int(starts[-1]), torch.cat(static), torch.cat(bias),
                         torch.stack([torch.cat([s, d]), torch.cat([d, s])]),
                         torch.cat([kind, kind + len(_KINDS)]), torch.cat(kidx), n_params)


@dataclass
class GraphBatch:
    """Graphs of several models, concatenated (PyG's batching: offsets on node indices).

    Edges are ordered as every forward edge of the batch, then (``reversed``) the same edges
    reversed; ``kernels`` holds the weights of the forward ones (the reversed edges carry the
    same).
    """

    x: torch.Tensor  # [nodes, NODE_STATIC + 1]
    edge_index: torch.Tensor  # [2, 2 * edges]
    kernels: torch.Tensor  # [edges, K * K]
    edge_type: torch.Tensor  # [2 * edges] layer kind + 3 * direction
    batch: torch.Tensor  # [nodes] graph of each node (its row's position in the batch)
    num_graphs: int
    reversed: bool = True


@dataclass
class _Prep:
    """Weight / bias scales from the train rows and the templates built so far."""

    weight_scale: float
    bias_scale: float
    kernel: int
    reverse_edges: bool
    templates: dict[str, GraphTemplate]
    degree_histogram: torch.Tensor

    def template(self, arch: str, manifest: Manifest) -> GraphTemplate:
        if arch not in self.templates:
            if arch not in manifest.architectures:
                raise MethodError(f"graph-metanet: architecture {arch!r} is not in the zoo's "
                                  "manifest (no layout)")
            entry = manifest.architectures[arch]
            self.templates[arch] = graph_template(list(entry.layout), entry.name, self.kernel)
        return self.templates[arch]


class _GraphRows:
    """Rows of any architectures; :meth:`inputs` assembles their graphs."""

    def __init__(self, dataset: datasets.Dataset, manifest: Manifest, prep: _Prep) -> None:
        self.prep = prep
        self.keys = row_keys(dataset)
        self.n = len(dataset)
        self.arch_of = np.empty(self.n, dtype=object)
        self.local = np.zeros(self.n, dtype=np.int64)  # row index within its architecture
        self.weights: dict[str, torch.Tensor] = {}  # per architecture, a zero column appended
        self.templates: dict[str, GraphTemplate] = {}
        for arch, (rows, w) in weights_by_architecture(dataset).items():
            self.templates[arch] = prep.template(arch, manifest)
            self.weights[arch] = torch.cat([w, torch.zeros(w.shape[0], 1)], 1)
            self.arch_of[rows] = arch
            self.local[rows] = np.arange(len(rows))

    def __len__(self) -> int:
        return self.n

    def inputs(self, idx: torch.Tensor) -> GraphBatch:
        """The graphs of rows ``idx``; graph ``j`` of the batch is row ``idx[j]``."""
        idx_np = idx.numpy()
        xs, fwd, rev, kerns, types, bs = [], [], [], [], [], []
        offset = 0
        for arch in sorted(set(self.arch_of[idx_np].tolist())):
            pos = np.flatnonzero(self.arch_of[idx_np] == arch)  # positions in the batch
            t, w = self.templates[arch], self.weights[arch][self.local[idx_np[pos]]]
            k, n_edges = len(pos), t.kernel_index.shape[0]
            bias = w[:, t.bias_index] / self.prep.bias_scale  # [k, n]
            xs.append(torch.cat([t.node_static.expand(k, -1, -1), bias[..., None]], 2)
                      .reshape(k * t.n_nodes, -1))
            kerns.append((w[:, t.kernel_index] / self.prep.weight_scale).reshape(k * n_edges, -1))
            ei = t.edge_index[None] + (torch.arange(k) * t.n_nodes + offset).view(k, 1, 1)
            fwd.append(ei[:, :, :n_edges].permute(1, 0, 2).reshape(2, -1))
            rev.append(ei[:, :, n_edges:].permute(1, 0, 2).reshape(2, -1))
            types.append(t.edge_type.view(2, 1, n_edges).expand(2, k, n_edges).reshape(2, -1))
            bs.append(torch.as_tensor(pos, dtype=torch.int64).repeat_interleave(t.n_nodes))
            offset += k * t.n_nodes
        edge_type = torch.cat(types, 1)
        if not self.prep.reverse_edges:
            return GraphBatch(torch.cat(xs), torch.cat(fwd, 1), torch.cat(kerns), edge_type[0],
                              torch.cat(bs), len(idx_np), reversed=False)
        return GraphBatch(torch.cat(xs), torch.cat([*fwd, *rev], 1), torch.cat(kerns),
                          torch.cat([edge_type[0], edge_type[1]]), torch.cat(bs), len(idx_np))


class GraphMetanet(nn.Module):
    """Encoders, message passing with residuals, mean + max pooling, MLP head.

    Args:
        n_outputs: outputs of the head.
        kernel_dim: weights per edge (``K * K``).
        hidden: node / edge embedding width.
        layers: message-passing rounds.
        conv: ``"pna"`` or ``"gine"``.
        degree_histogram: in-degree histogram of the train graphs (PNA's scalers).
        dropout: dropout in the head.
    """

    def __init__(self, n_outputs: int, kernel_dim: int, *, hidden: int, layers: int, conv: str,
                 degree_histogram: torch.Tensor, dropout: float) -> None:
        super().__init__()
        from torch_geometric.nn import GINEConv, PNAConv

        self.node_in = nn.Linear(NODE_STATIC + 1, hidden)
        self.edge_in = nn.Linear(kernel_dim, hidden, bias=False)
        self.edge_type = nn.Embedding(2 * len(_KINDS), hidden)  # kind x direction
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        for _ in range(layers):
            if conv == "pna":
                self.convs.append(PNAConv(hidden, hidden, ["mean", "min", "max", "std"],
                                          ["identity", "amplification", "attenuation"],
                                          degree_histogram, edge_dim=hidden, towers=1,
                                          divide_input=False))
            elif conv == "gine":
                self.convs.append(GINEConv(nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                                         nn.Linear(hidden, hidden))))
            else:
                raise MethodError(f"graph-metanet: conv must be 'pna' or 'gine', not {conv!r}")
            self.norms.append(nn.LayerNorm(hidden))
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, n_outputs))

    def forward(self, g: GraphBatch) -> torch.Tensor:  # noqa: D102
        from torch_geometric.nn import global_max_pool, global_mean_pool

        x = self.node_in(g.x)
        e = self.edge_in(g.kernels)  # forward edges; the reversed ones carry the same weights
        e = (torch.cat([e, e]) if g.reversed else e) + self.edge_type(g.edge_type)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = x + torch.relu(norm(conv(x, g.edge_index, e)))
        pooled = torch.cat([global_mean_pool(x, g.batch, g.num_graphs),
                            global_max_pool(x, g.batch, g.num_graphs)], 1)
        return self.head(pooled)


class GraphMetanetPredictor(TrainedPredictor):
    """One graph metanetwork for every architecture of a zoo, trained per task.

    Args:
        network: overrides of :data:`GRAPH_DEFAULTS`.
        train: overrides of :data:`TRAIN_DEFAULTS`.
    """

    name = "graph-metanet"
    any_architecture = True

    def __init__(self, network: dict[str, Any] | None = None,
                 train: TrainConfig | dict[str, Any] | None = None) -> None:
        super().__init__(train if isinstance(train, TrainConfig)
                         else {**TRAIN_DEFAULTS, **(train or {})})
        unknown = set(network or {}) - set(GRAPH_DEFAULTS)
        if unknown:
            raise MethodError(f"graph-metanet: unknown network settings {sorted(unknown)}; "
                              f"choose from {sorted(GRAPH_DEFAULTS)}")
        self.network = {**GRAPH_DEFAULTS, **(network or {})}

    def settings(self) -> dict[str, Any]:
        """Message passing, widths, kernel size of the edge features."""
        return {"reference": "Kofinas et al. 2024 (Neural Graphs), torch_geometric",
                **self.network}

    def prepare(self, train: datasets.Dataset, manifest: Manifest) -> _Prep:
        """Global weight / bias scales and the train graphs' in-degree histogram."""
        prep = _Prep(1.0, 1.0, int(self.network["kernel"]), bool(self.network["reverse_edges"]),
                     {}, torch.zeros(1))
        wsum = wsq = bsum = bsq = 0.0
        wn = bn = 0
        hist = torch.zeros(1, dtype=torch.int64)
        for arch, (rows, w) in weights_by_architecture(train).items():
            t = prep.template(arch, manifest)
            biases = t.bias_index[t.bias_index < t.n_params]
            is_bias = torch.zeros(t.n_params, dtype=torch.bool)
            is_bias[biases] = True
            wv, bv = w[:, ~is_bias].double(), w[:, is_bias].double()
            wsum, wsq, wn = wsum + float(wv.sum()), wsq + float((wv**2).sum()), wn + wv.numel()
            bsum, bsq, bn = bsum + float(bv.sum()), bsq + float((bv**2).sum()), bn + bv.numel()
            targets = t.edge_index[1] if prep.reverse_edges else \
                t.edge_index[1, : t.kernel_index.shape[0]]
            deg = torch.bincount(torch.bincount(targets, minlength=t.n_nodes))
            size = max(len(hist), len(deg))
            hist = nn.functional.pad(hist, (0, size - len(hist))) + \
                nn.functional.pad(deg, (0, size - len(deg))) * len(rows)

        def std(s: float, q: float, n: int) -> float:
            v = q / n - (s / n) ** 2 if n else 1.0
            return math.sqrt(v) if v > 1e-16 else 1.0

        prep.weight_scale, prep.bias_scale = std(wsum, wsq, wn), std(bsum, bsq, bn)
        prep.degree_histogram = hist
        return prep

    def encode(self, dataset: datasets.Dataset, manifest: Manifest, prep: _Prep) -> Rows:
        """The rows' weights, grouped by architecture, for graph assembly."""
        return _GraphRows(dataset, manifest, prep)

    def build(self, prep: _Prep, n_outputs: int) -> nn.Module:
        """A fresh :class:`GraphMetanet`."""
        net = self.network
        return GraphMetanet(n_outputs, prep.kernel**2, hidden=net["hidden"],
                            layers=net["layers"], conv=net["conv"],
                            degree_histogram=prep.degree_histogram, dropout=net["dropout"])


register_method("graph-metanet")(GraphMetanetPredictor)
