"""Population trainer: many models of one architecture trained at once.

Parameters of all models are stacked along a leading "model" dimension. Each model keeps its
own seed, init, data order, optimizer, learning rate and weight decay: models with the same
(optimizer, lr, wd, schedule) share stacked leaf tensors (one per block of models) and one
``torch.optim`` optimizer, which is exact because Adam/SGD act element-wise. The
forward/backward pass runs on the fastest of three paths that fits the network, chosen once
per population (:mod:`modelzoo.training.paths`): dense batched matmuls (``dense.py``),
grouped channels_last ops (``stacked.py``) or ``vmap(functional_call(...))``.

The per-model reference loop (``loop.py``) gives the same weights within float tolerance
(dropout masks are drawn differently; both are deterministic for a seed); the tests check
every path against it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from modelzoo.errors import ZooError
from modelzoo.sources import SourceData
from modelzoo.storage.layout import flatten_state_dict, layer_layout
from modelzoo.training.allocator import keep_freed_memory
from modelzoo.training.common import (
    Checkpoint,
    initial_states,
    is_diverged,
    split_batches,
    splits_on,
)
from modelzoo.training.config import (
    TrainConfig,
    epoch_order,
    make_optimizer,
    make_scheduler,
    train_subset,
)
from modelzoo.training.paths import PopulationPath, forward_path, model_blocks


def population_path(
    model: torch.nn.Module, in_shape: tuple[int, ...], device: torch.device
) -> PopulationPath:
    """The forward path the population trainer takes for ``model`` on inputs of ``in_shape``.

    ``dense`` and ``grouped`` give bit-identical results for any thread count and group size
    (tested); ``vmap`` runs torch's own convolutions, whose results depend on the thread count.
    """
    return forward_path(model, in_shape, device).name


def train_population(
    *,
    arch: str,
    arch_kwargs: dict[str, Any],
    configs: Sequence[TrainConfig],
    data: SourceData,
    epochs: int,
    checkpoint_epochs: Sequence[int],
    device: str | torch.device = "cpu",
) -> Iterator[Checkpoint]:
    """Train ``configs`` as one vectorised population; yield a Checkpoint per checkpoint epoch.

    All configs must share ``TrainConfig.group_key()`` (activation, dropout, batch size, train
    fraction). Models are yielded in the order of ``configs``.
    """
    if not configs:
        return
    if len(configs) == 1:
        # a batched matmul over one model takes other kernels (other rounding) than over
        # several: train the model beside a copy of itself so that its numbers equal those it
        # gets in any larger group (resumed builds regroup models freely)
        pair = [configs[0], configs[0]]
        for ck in train_population(arch=arch, arch_kwargs=arch_kwargs, configs=pair, data=data,
                                   epochs=epochs, checkpoint_epochs=checkpoint_epochs,
                                   device=device):
            yield ck.head(1)
        return
    keys = {c.group_key() for c in configs}
    if len(keys) != 1:
        raise ZooError(f"a population must share activation/dropout/batch/fraction, got {keys}")
    device = torch.device(device)
    if device.type == "cpu":
        keep_freed_memory()  # see allocator.py: ~20% per step on CPU
    cfg0 = configs[0]
    template, states = initial_states(arch, arch_kwargs, configs)
    base = template.to(device)
    layout = layer_layout(base)
    param_names = [n for n, _ in base.named_parameters()]
    buffer_names = [n for n, b in base.named_buffers()]

    # Stacked leaves per optimizer subgroup (contiguous runs of equal optim_key).
    order = sorted(range(len(configs)), key=lambda i: configs[i].optim_key())
    groups: list[list[int]] = []
    for i in order:
        if groups and configs[groups[-1][0]].optim_key() == configs[i].optim_key():
            groups[-1].append(i)
        else:
            groups.append([i])
    inv = torch.empty(len(configs), dtype=torch.long)
    inv[torch.tensor(order)] = torch.arange(len(configs))  # stacked row of each config

    # chosen once: dense matmuls, grouped channels_last ops or vmap (paths.py)
    path = forward_path(base, tuple(data.x_train.shape[1:]), device)
    # model blocks: the forward/backward runs block by block (cache-sized working set on the
    # dense path); a model's numbers do not depend on its block (as on the group), but dropout
    # masks would be drawn per block, so dropout populations run as one block
    blocks = model_blocks(len(configs), path.model_block if cfg0.dropout == 0 else None)

    stacked = {n: torch.stack([st[n] for st in states]) for n in param_names + buffer_names}
    del states  # the stacked copies are the population now; base keeps the structure
    stacked = {n: t[order].to(device) for n, t in stacked.items()}  # stacked row order
    # one leaf per (optimizer subgroup, block) piece of rows
    starts = [0]
    for g in groups:
        starts.append(starts[-1] + len(g))
    pieces: list[list[dict[str, torch.Tensor]]] = [[] for _ in blocks]  # per block
    group_leaves: list[list[torch.Tensor]] = [[] for _ in groups]
    for k, blk in enumerate(blocks):
        for gi in range(len(groups)):
            lo, hi = max(blk.start, starts[gi]), min(blk.stop, starts[gi + 1])
            if lo < hi:
                leaf = {n: stacked[n][lo:hi].clone().requires_grad_(True) for n in param_names}
                pieces[k].append(leaf)
                group_leaves[gi].extend(leaf.values())
    buffers = {n: stacked[n] for n in buffer_names}
    del stacked
    # fused optimizers on CUDA only: the CPU fused kernels run the last (numel % vector width)
    # elements through a scalar tail whose rounding differs, so a model's weights would depend
    # on its position and the group's size; the per-op CPU kernels are as fast at these sizes
    fused = device.type == "cuda"
    optims = [make_optimizer(lv, configs[g[0]], fused=fused)
              for lv, g in zip(group_leaves, groups)]

    def block_params(k: int) -> dict[str, torch.Tensor]:
        if len(pieces[k]) == 1:
            return pieces[k][0]
        return {n: torch.cat([lv[n] for lv in pieces[k]]) for n in param_names}

    def params() -> dict[str, torch.Tensor]:
        if len(blocks) == 1:
            return block_params(0)
        return {n: torch.cat([lv[n] for bp in pieces for lv in bp]) for n in param_names}

    def block_buffers(blk: slice) -> dict[str, torch.Tensor]:
        return {n: b[blk] for n, b in buffers.items()}

    eval_batch = path.eval_batch
    xs = splits_on(data, device)
    subsets = [train_subset(c, len(data.y_train)) for c in (configs[i] for i in order)]
    n_sub = len(subsets[0])
    total_steps = epochs * len(split_batches(n_sub, cfg0.batch_size))
    scheds = [make_scheduler(o, configs[g[0]], total_steps) for o, g in zip(optims, groups)]
    diverged = torch.zeros(len(configs), dtype=torch.bool)
    torch.manual_seed(sum(c.seed for c in configs) + 1)  # dropout stream of this population

    def evaluate() -> dict[str, torch.Tensor]:
        base.eval()
        out: dict[str, torch.Tensor] = {}
        sums = {split: (torch.zeros(len(configs), device=device),
                        torch.zeros(len(configs), device=device)) for split in xs}
        with torch.no_grad():
            for k, blk in enumerate(blocks):
                p = {n: t.detach() for n, t in block_params(k).items()}
                fwd = path.shared(p, block_buffers(blk))
                for split, (x, y) in xs.items():
                    loss_sum, correct = sums[split][0][blk], sums[split][1][blk]
                    for sl in split_batches(len(y), eval_batch):
                        logits = fwd(x[sl]).float()  # [m, K, n]
                        tgt = y[sl].expand(logits.shape[0], -1)
                        loss_sum += F.cross_entropy(logits, tgt, reduction="none").sum(1)
                        # argmax over a contiguous last dim: ~7x faster than over dim 1 on CPU
                        pred = logits.transpose(1, 2).contiguous().argmax(-1)
                        correct += (pred == tgt).sum(1)
        for split, (_, y) in xs.items():
            out[f"{split}_loss"] = (sums[split][0] / len(y)).cpu()[inv]
            out[f"{split}_acc"] = (sums[split][1] / len(y)).cpu()[inv]
        base.train()
        return out

    def snapshot(epoch: int) -> Checkpoint:
        with torch.no_grad():
            p = params()
            state = {**{n: p[n] for n in param_names}, **buffers}
            flat = flatten_state_dict(state, layout, batch=len(configs)).cpu()[inv]
        metrics = evaluate()
        nonlocal diverged
        diverged = diverged | is_diverged(flat, metrics["train_loss"])
        return Checkpoint(epoch, list(configs), flat, metrics, diverged.clone())

    ckpts = set(checkpoint_epochs)
    if 0 in ckpts:
        yield snapshot(0)
    base.train()
    bs = cfg0.batch_size
    for epoch in range(1, epochs + 1):
        perm = torch.stack([epoch_order(configs[i], s, epoch) for i, s in zip(order, subsets)])
        perm = perm.to(device)
        for sl in split_batches(n_sub, bs):
            for k, blk in enumerate(blocks):
                idx = perm[blk, sl]
                xb, yb = xs["train"][0][idx], xs["train"][1][idx]
                losses = path.losses(block_params(k), block_buffers(blk), xb, yb)
                losses.sum().backward()
            for opt, sched in zip(optims, scheds):
                opt.step()
                opt.zero_grad(set_to_none=True)
                if sched is not None:
                    sched.step()
        if epoch in ckpts:
            yield snapshot(epoch)
