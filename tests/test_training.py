"""Population trainer vs per-model reference loop, determinism and divergence flags."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from modelzoo.architectures import ARCHITECTURES
from modelzoo.sources import load_source
from modelzoo.training import TrainConfig, train_one, train_population

CONFIGS = [
    TrainConfig(seed=0, lr=1e-3, optimizer="adam", init="kaiming_uniform"),
    TrainConfig(seed=1, lr=1e-2, optimizer="sgd", weight_decay=1e-4, init="normal"),
    TrainConfig(seed=2, lr=3e-3, optimizer="adam", weight_decay=1e-3, init="uniform"),
    TrainConfig(seed=3, lr=1e-3, optimizer="adamw", weight_decay=1e-2, init="xavier_normal"),
]
EXTRA = {"resnet18": {"width": 4, "norm": "none"}, "resnet34": {"width": 2, "norm": "none"}}


@pytest.fixture(scope="module")
def digits():
    """Digits with 400 training images: enough steps to compare trainers, fast on 2 cores."""
    d = load_source("digits")
    return dataclasses.replace(d, x_train=d.x_train[:400], y_train=d.y_train[:400])


def _kwargs(name: str) -> dict:
    return {"in_channels": 1, "num_classes": 10, "image_size": 8, **EXTRA.get(name, {})}


@pytest.mark.parametrize("name", [n for n in ARCHITECTURES.names() if not n.startswith("resnet")])
def test_population_matches_reference_loop(name: str, digits) -> None:
    kw = _kwargs(name)
    pop = list(train_population(arch=name, arch_kwargs=kw, configs=CONFIGS, data=digits,
                                epochs=2, checkpoint_epochs=[0, 1, 2]))
    assert [c.epoch for c in pop] == [0, 1, 2]
    for m, cfg in enumerate(CONFIGS):
        ref = list(train_one(arch=name, arch_kwargs=kw, cfg=cfg, data=digits, epochs=2,
                             checkpoint_epochs=[0, 1, 2]))
        for p, r in zip(pop, ref):
            assert torch.allclose(p.weights[m], r.weights[0], atol=2e-5, rtol=1e-4)
            for k in r.metrics:
                assert p.metrics[k][m].item() == pytest.approx(r.metrics[k][0].item(), abs=1e-4)
    assert not torch.equal(pop[2].weights[0], pop[0].weights[0])  # it trained
    assert pop[2].metrics["train_acc"].mean() > pop[0].metrics["train_acc"].mean()


@pytest.mark.parametrize("norm", ["none", "bn"])
def test_resnet_population_matches_reference(norm: str, digits) -> None:
    """ResNets (with BatchNorm buffers too) run vectorised; SGD keeps the comparison tight.

    A width-4 ResNet on 8x8 images reaches 1x1 feature maps where BatchNorm of a near-dead
    channel divides by ~sqrt(eps): from the second step on, float rounding (different but
    equally valid summation orders, which differ between CPUs and thread counts) is amplified
    ~1000x. The check therefore covers the initial state and one full-batch step (weights and
    BatchNorm running statistics), where both paths agree to float precision.
    """
    kw = {**_kwargs("resnet18"), "norm": norm}
    cfgs = [TrainConfig(seed=s, optimizer="sgd", lr=1e-2, batch_size=400) for s in (0, 1)]
    pop = list(train_population(arch="resnet18", arch_kwargs=kw, configs=cfgs, data=digits,
                                epochs=1, checkpoint_epochs=[1]))
    for m, cfg in enumerate(cfgs):
        ref = list(train_one(arch="resnet18", arch_kwargs=kw, cfg=cfg, data=digits, epochs=1,
                             checkpoint_epochs=[1]))
        assert torch.allclose(pop[0].weights[m], ref[0].weights[0], atol=1e-5, rtol=1e-4)


def test_same_seed_is_bit_identical(digits) -> None:
    run = lambda: list(train_population(arch="cnn_s", arch_kwargs=_kwargs("cnn_s"),  # noqa: E731
                                        configs=CONFIGS[:2], data=digits, epochs=1,
                                        checkpoint_epochs=[1]))
    a, b = run(), run()
    assert torch.equal(a[0].weights, b[0].weights)


def test_different_seeds_differ_and_data_order_is_per_model(digits, monkeypatch) -> None:
    """Each model of a population trains on its own data order: every checkpoint after epoch 0
    equals the model trained alone, and training it on another model's order gives other
    weights (so a population that shared one order, or mixed up whose order is whose, fails).
    """
    from modelzoo.training import config as train_config
    from modelzoo.training import loop

    # lr 3e-3 sorts model 1 first among the stacked optimizer groups: rows != config order
    cfgs = [TrainConfig(seed=0, lr=1e-2), TrainConfig(seed=1, lr=3e-3),
            TrainConfig(seed=2, lr=1e-2)]
    kw, epochs = _kwargs("mlp"), [0, 1, 2]
    pop = list(train_population(arch="mlp", arch_kwargs=kw, configs=cfgs, data=digits,
                                epochs=2, checkpoint_epochs=epochs))
    assert [c.epoch for c in pop] == epochs
    assert not torch.equal(pop[0].weights[0], pop[0].weights[1])  # seeds: different inits
    subset = torch.arange(len(digits.y_train))
    assert not torch.equal(train_config.epoch_order(cfgs[0], subset, 1),
                           train_config.epoch_order(cfgs[1], subset, 1))
    for m, cfg in enumerate(cfgs):
        alone = list(train_one(arch="mlp", arch_kwargs=kw, cfg=cfg, data=digits, epochs=2,
                               checkpoint_epochs=epochs))
        for p, r in zip(pop, alone, strict=True):
            assert torch.allclose(p.weights[m], r.weights[0], atol=2e-5, rtol=1e-4), (m, p.epoch)
    # model 1 trained alone on model 0's data order: same init, other checkpoints after epoch 0
    monkeypatch.setattr(loop, "epoch_order",
                        lambda cfg, sub, epoch: train_config.epoch_order(cfgs[0], sub, epoch))
    other_order = list(train_one(arch="mlp", arch_kwargs=kw, cfg=cfgs[1], data=digits,
                                 epochs=2, checkpoint_epochs=epochs))
    assert torch.allclose(other_order[0].weights[0], pop[0].weights[1], atol=1e-6)
    for p, r in zip(pop[1:], other_order[1:], strict=True):
        assert not torch.allclose(p.weights[1], r.weights[0], atol=1e-3), p.epoch


def test_divergence_is_flagged_not_dropped(digits) -> None:
    cfgs = [TrainConfig(seed=0, lr=1e-3), TrainConfig(seed=1, lr=1e6, optimizer="sgd")]
    pop = list(train_population(arch="mlp", arch_kwargs=_kwargs("mlp"), configs=cfgs,
                                data=digits, epochs=2, checkpoint_epochs=[0, 1, 2]))
    last = pop[-1]
    assert last.weights.shape[0] == 2
    assert last.diverged.tolist() == [False, True]
    assert not pop[0].diverged.any()


def test_train_fraction_uses_fewer_examples(digits) -> None:
    from modelzoo.training.config import train_subset

    cfg = TrainConfig(seed=5, train_fraction=0.5)
    sub = train_subset(cfg, 1000)
    assert len(sub) == 500 and len(set(sub.tolist())) == 500
    assert torch.equal(sub, train_subset(cfg, 1000))


def test_onecycle_schedule_population_matches_loop(digits) -> None:
    cfgs = [TrainConfig(seed=0, optimizer="sgd", lr=0.05, schedule="onecycle"),
            TrainConfig(seed=1, optimizer="sgd", lr=0.05)]
    kw = _kwargs("cnn_s")
    pop = list(train_population(arch="cnn_s", arch_kwargs=kw, configs=cfgs, data=digits,
                                epochs=2, checkpoint_epochs=[2]))
    for m, cfg in enumerate(cfgs):
        ref = list(train_one(arch="cnn_s", arch_kwargs=kw, cfg=cfg, data=digits, epochs=2,
                             checkpoint_epochs=[2]))
        assert torch.allclose(pop[0].weights[m], ref[0].weights[0], atol=2e-5, rtol=1e-4)
    constant = list(train_one(arch="cnn_s", arch_kwargs=kw, data=digits, epochs=2,
                              cfg=cfgs[0].model_copy(update={"schedule": "constant"}),
                              checkpoint_epochs=[2]))
    assert not torch.allclose(pop[0].weights[0], constant[0].weights[0])


@pytest.mark.parametrize("name", ARCHITECTURES.names())
def test_stacked_forward_equals_vmap(name: str) -> None:
    """The channels_last grouped forward (CPU fast path) equals vmap(functional_call)."""
    from torch.func import stack_module_state

    from modelzoo.architectures import create_model
    from modelzoo.training.stacked import plain_sequential, stacked_forward, supports_stacked

    kw = _kwargs(name)
    models = [create_model(name, **kw) for _ in range(3)]
    base = models[0]
    if not supports_stacked(base):
        # BatchNorm/residual nets and custom forwards (Wild Park) use the vmap path
        assert not plain_sequential(base)
        return
    params, buffers = stack_module_state(models)
    for x in (torch.randn(3, 5, 1, 8, 8), torch.randn(5, 1, 8, 8)):  # per model, shared
        ref = _vmap_logits(base, params, buffers, x)
        assert torch.allclose(stacked_forward(base, params, x, 3), ref, atol=1e-5)


def _vmap_logits(base, params, buffers, x):
    from torch.func import functional_call, vmap

    if x.dim() == 4:
        return vmap(lambda p, b: functional_call(base, (p, b), (x,)))(params, buffers)
    return vmap(lambda p, b, x_: functional_call(base, (p, b), (x_,)))(params, buffers, x)


def _check_dense_equals_vmap(models: list, image: int) -> None:
    from torch.func import stack_module_state

    from modelzoo.training.dense import DenseStack

    base = models[0]
    plan = DenseStack.build(base, (1, image, image))
    assert plan is not None
    params, buffers = stack_module_state(models)
    x = torch.randn(len(models), 6, 1, image, image)
    x[:, :3, :, :, :3] = -0.5  # constant patches: tied maxima inside pooling windows
    shared = x[0]
    for inp in (x, shared):
        ref = _vmap_logits(base, params, buffers, inp)
        out = plan(params, inp)  # [M, K, B]
        assert torch.allclose(out.transpose(1, 2), ref, atol=1e-5)
        g_ref = torch.autograd.grad(ref.square().sum(), list(params.values()))
        g_out = torch.autograd.grad(plan(params, inp).square().sum(), list(params.values()))
        for a, b in zip(g_out, g_ref):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("name", ARCHITECTURES.names())
def test_dense_forward_and_gradients_equal_vmap(name: str, activation: str) -> None:
    """The dense-matmul path (CPU, small images) equals vmap(functional_call), gradients too;
    architectures it does not cover say so (None) and use the other paths."""
    from modelzoo.architectures import create_model
    from modelzoo.training.dense import DenseStack
    from modelzoo.training.stacked import plain_sequential

    models = [create_model(name, **_kwargs(name), activation=activation) for _ in range(3)]
    if DenseStack.build(models[0], (1, 8, 8)) is None:
        # custom forwards (residual, Wild Park) or Toeplitz matrices too large
        assert not plain_sequential(models[0]) or name == "cnn_l"
        return
    _check_dense_equals_vmap(models, 8)


@pytest.mark.parametrize("layers", [
    # act between conv and pool: bias and act before the pool, no in-place backward
    lambda: [torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
             torch.nn.Flatten(), torch.nn.Linear(3 * 16, 4)],
    # stride, dilation, no bias, average pool, odd size with floor pooling
    lambda: [torch.nn.Conv2d(1, 2, 3, stride=2, dilation=2, padding=2, bias=False),
             torch.nn.AvgPool2d(2), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(8, 3)],
    lambda: [torch.nn.Conv2d(1, 2, 2), torch.nn.MaxPool2d(2), torch.nn.Conv2d(2, 3, 2, padding=1),
             torch.nn.SiLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
             torch.nn.Linear(3, 2)],
])
def test_dense_path_layer_combinations(layers) -> None:
    models = [torch.nn.Sequential(*layers()) for _ in range(2)]
    _check_dense_equals_vmap(models, 8)


def test_dense_path_declines_what_it_cannot_run() -> None:
    from modelzoo.architectures import create_model
    from modelzoo.training.dense import DenseStack

    mnist_cnn = create_model("cnn_s", in_channels=1, num_classes=10, image_size=28)
    assert DenseStack.build(mnist_cnn, (1, 28, 28)) is None  # Toeplitz matrix too large
    overlapping = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.MaxPool2d(3, 2),
                                      torch.nn.Flatten(), torch.nn.Linear(8, 2))
    assert DenseStack.build(overlapping, (1, 8, 8)) is None  # overlapping pool windows
    bn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2),
                             torch.nn.Flatten(), torch.nn.Linear(72, 2))
    assert DenseStack.build(bn, (1, 8, 8)) is None  # buffers


@pytest.mark.parametrize("name", ARCHITECTURES.names())
def test_initial_states_equal_building_each_model(name: str) -> None:
    """The population's shortcut (one template re-initialised per config) draws exactly what
    building every model on its own draws, for every init scheme."""
    from modelzoo.training.common import build_model, initial_states
    from modelzoo.training.config import INITS

    kw = _kwargs(name)
    cfgs = [TrainConfig(seed=s, init=init) for s, init in enumerate(INITS)]
    _, states = initial_states(name, kw, cfgs)
    for cfg, state in zip(cfgs, states):
        ref = build_model(name, kw, cfg).state_dict()
        assert state.keys() == ref.keys()
        assert all(torch.equal(state[k], ref[k]) for k in ref)


@pytest.mark.parametrize("setting,applied", [("1", True), ("0", False)])
def test_allocator_tuning_and_its_opt_out(setting: str, applied: bool) -> None:
    """glibc malloc tuning is applied once per process unless MODELZOO_MALLOC_TUNING=0."""
    import os
    import platform
    import subprocess
    import sys

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt tuning is glibc-only")
    code = ("from modelzoo.training.allocator import keep_freed_memory as k; "
            "print(k(), k())")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "MODELZOO_MALLOC_TUNING": setting}, check=True)
    assert res.stdout.split() == [str(applied)] * 2


def test_forward_path_is_chosen_once_per_network_and_flattening_is_shared() -> None:
    """One ForwardPath per network; stacked states flatten like each model's own state_dict."""
    from torch.func import stack_module_state

    from modelzoo.architectures import create_model
    from modelzoo.storage.layout import flatten_state_dict, layer_layout
    from modelzoo.training.paths import DensePath, GroupedPath, VmapPath, forward_path

    cpu, kw = torch.device("cpu"), _kwargs("cnn_s")
    assert isinstance(forward_path(create_model("cnn_s", **kw), (1, 8, 8), cpu), DensePath)
    big = create_model("cnn_s", **{**kw, "image_size": 28})
    assert isinstance(forward_path(big, (1, 28, 28), cpu), GroupedPath)
    assert isinstance(forward_path(create_model("resnet18", **_kwargs("resnet18")), (1, 8, 8),
                                   cpu), VmapPath)
    models = [create_model("cnn_s", **kw) for _ in range(3)]
    params, buffers = stack_module_state(models)
    x, y = torch.randn(3, 4, 1, 8, 8), torch.randint(0, 10, (3, 4))
    dense = forward_path(models[0], (1, 8, 8), cpu)
    for other in (GroupedPath(models[0]), VmapPath(models[0])):
        assert torch.allclose(dense.losses(params, buffers, x, y),
                              other.losses(params, buffers, x, y), atol=1e-5)
        assert torch.allclose(dense.shared(params, buffers)(x[0]),
                              other.shared(params, buffers)(x[0]), atol=1e-5)
    layout = layer_layout(models[0])
    flat = flatten_state_dict(params, layout, batch=3)
    for m, model in enumerate(models):
        assert torch.equal(flat[m], flatten_state_dict(model.state_dict(), layout))


def test_model_blocks_give_bit_identical_populations(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dense path trains and evaluates block by block: every block holds >= 2 models, and
    a model's weights and metrics do not depend on the blocks (mixed optimizer subgroups)."""
    from modelzoo.sources import load_source
    from modelzoo.training import paths

    for m, size in ((2, 1), (7, 2), (9, 4), (64, 32), (65, 32)):
        blocks = paths.model_blocks(m, size)
        assert blocks[0].start == 0 and blocks[-1].stop == m
        assert all(a.stop == b.start for a, b in zip(blocks, blocks[1:]))
        assert all(2 <= b.stop - b.start <= max(size, 2) + 1 for b in blocks)
    data = load_source("digits", max_train=120)
    cfgs = [TrainConfig(seed=s, lr=(1e-3, 3e-3)[s % 2], optimizer=("adam", "sgd")[s % 3 == 0])
            for s in range(7)]
    runs = []
    for size in (None, 2):
        monkeypatch.setattr(paths, "MODEL_BLOCK", size)
        runs.append(list(train_population(arch="cnn_s", arch_kwargs=_kwargs("cnn_s"),
                                          configs=cfgs, data=data, epochs=1,
                                          checkpoint_epochs=[0, 1])))
    for whole, blocked in zip(*runs, strict=True):
        assert torch.equal(whole.weights, blocked.weights)
        for name, v in whole.metrics.items():
            assert torch.equal(v, blocked.metrics[name]), name
