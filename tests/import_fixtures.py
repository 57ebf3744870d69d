"""Tiny public zoos in their exact on-disk layouts, for ``zoo import`` tests (built in seconds).

Each writer reproduces the layout the authors' code writes (read from it: ModelZoos/
ModelZooDataset, google-research dnn_predict_accuracy as NFN reads it, mkofinas/neural-graphs,
NUS-HPC-AI-Lab/Neural-Network-Parameter-Diffusion), including the traps an importer must get
right. The networks are built here the way those projects build them (e.g. the Model Zoos
CNN as a ``module_list`` with dropout modules in it), not with the toolkit's architectures.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modelzoo.architectures import create_model

# ------------------------------------------------------------------------ Model Zoos (Ray Tune)


class ModelZoosCNN(nn.Module):
    """The Model Zoos CNN-s as its authors define it: a ``module_list`` whose dropout modules
    (present when dropout > 0) shift the indices of the later layers."""

    def __init__(self, channels_in: int = 1, dropout: float = 0.0, nlin: str = "tanh") -> None:
        super().__init__()
        act = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}[nlin]
        drop = [nn.Dropout(dropout)] if dropout > 0 else []
        self.module_list = nn.ModuleList([
            nn.Conv2d(channels_in, 8, 5), nn.MaxPool2d(2, 2), act(), *drop,
            nn.Conv2d(8, 6, 5), nn.MaxPool2d(2, 2), act(), *drop,
            nn.Conv2d(6, 4, 2), act(), nn.Flatten(),
            nn.Linear(36, 20), act(), *drop, nn.Linear(20, 10)])  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for m in self.module_list:
            x = m(x)
        return x


class ModelZoosCNNLarge(nn.Module):
    """The Model Zoos CNN-l (``CNN3``): its dropout modules are always there (p may be 0)."""

    def __init__(self, channels_in: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.module_list = nn.ModuleList([
            nn.Conv2d(channels_in, 16, 3), nn.MaxPool2d(2, 2), nn.Tanh(), nn.Dropout(dropout),
            nn.Conv2d(16, 32, 3), nn.MaxPool2d(2, 2), nn.Tanh(), nn.Dropout(dropout),
            nn.Conv2d(32, 15, 3), nn.MaxPool2d(2, 2), nn.Tanh(), nn.Dropout(dropout),
            nn.Flatten(), nn.Linear(60, 20), nn.Tanh(), nn.Dropout(dropout), nn.Linear(20, 10)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for m in self.module_list:
            x = m(x)
        return x


def write_modelzoos_cnn_l(root: Path) -> dict[int, nn.Module]:
    """A Model Zoos CIFAR-10 CNN-l zoo: one trial, checkpoints 0 and 1."""
    d = root / "NN_tune_trainable_large_00000"
    d.mkdir(parents=True)
    (d / "params.json").write_text(json.dumps(_params("tanh", 0.0, 3, "CNN3", 3)))
    nets = {}
    for epoch in (0, 1):
        torch.manual_seed(epoch)
        nets[epoch] = ModelZoosCNNLarge()
        (d / f"checkpoint_{epoch}").mkdir()
        torch.save(nets[epoch].state_dict(), d / f"checkpoint_{epoch}" / "checkpoints")
    (d / "result.json").write_text("\n".join(json.dumps(_result(i, 3)) for i in (0, 1)) + "\n")
    return nets


def torchvision_resnet18_state(width: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """A ResNet-18 state dict under torchvision's key names (``downsample``, ``fc``) with
    BatchNorm buffers, as Model Zoos' ResNet-18 zoos save it (narrow, for speed)."""
    torch.manual_seed(seed)
    model = create_model("resnet18", in_channels=3, num_classes=10, image_size=32, width=width)
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(7)
    return {k.replace("shortcut", "downsample"): v.clone() for k, v in model.state_dict().items()}


def _params(nlin: str, dropout: float, seed: int, model_type: str = "CNN",
            channels: int = 1) -> dict:
    return {"model::type": model_type, "model::channels_in": channels, "model::o_dim": 10,
            "model::nlin": nlin, "model::dropout": dropout, "model::init_type": "kaiming_uniform",
            "optim::optimizer": "adam", "optim::lr": 0.001, "optim::wd": 0.0001,
            "optim::momentum": 0.9, "seed": seed, "training::batchsize": 10,
            "training::epochs_train": 3, "training::output_epoch": 1, "cuda": False,
            "dataset::dump": "/some/where/dataset.pt"}


def _result(it: int, seed: int) -> dict:
    acc = 0.1 + 0.2 * it + 0.01 * seed
    return {"train_loss": 2.3 - 0.5 * it, "train_acc": acc + 0.05, "test_loss": 2.4 - 0.5 * it,
            "test_acc": acc, "val_loss": 2.35 - 0.5 * it, "val_acc": acc + 0.01,
            "training_iteration": it, "trial_id": f"t{seed}", "config": {"seed": seed}}


def write_modelzoos(root: Path, extra: int = 0, *, crashed: bool = False) -> dict[str, dict]:
    """A Model Zoos MNIST CNN-s zoo of 5 trials x checkpoints 0..2 with every trap:

    * ``dataset.pt`` at the root: image data pickled as TensorDatasets (must not be loaded);
    * ``t_plain``: ``checkpoint_<N>`` (un-padded) folders; result lines written out of order;
    * ``t_dropout``: dropout 0.5 (shifted ``module_list`` indices), ``checkpoint_<N:06d>``;
    * ``t_noline``: the result line of epoch 1 is missing;
    * ``t_nan``: NaN weights from epoch 1 on, and a result line for epoch 3 with no checkpoint
      (a missing epoch); its last line is truncated;
    * ``t_relu``: another activation, padded names; an exploding weight (1e7) at epoch 2;
    * ``extra`` more plain trials (``t_extra<i>``);
    * with ``crashed``, a trial folder that crashed before its first checkpoint
      (``params.json`` only: not a model, but the original's split shuffle lists it).

    Returns:
        short name (``t_plain``...) -> {"models": {epoch: the network}, "params": params.json,
        "folder": the trial folder's name}.
    """
    root.mkdir(parents=True, exist_ok=True)
    data = torch.utils.data.TensorDataset(torch.zeros(4, 1, 28, 28), torch.zeros(4))
    torch.save({"trainset": data, "testset": data, "dataset_seed": 42}, root / "dataset.pt")
    (root / "config.json").write_text("{}")
    trials = {"t_plain": ("tanh", 0.0, 1, False), "t_dropout": ("tanh", 0.5, 2, True),
              "t_noline": ("gelu", 0.0, 3, True), "t_nan": ("sigmoid", 0.0, 4, False),
              "t_relu": ("relu", 0.0, 5, True),
              **{f"t_extra{i}": ("tanh", 0.0, 6 + i, False) for i in range(extra)}}
    out = {}
    for name, (nlin, dropout, seed, padded) in trials.items():
        d = root / f"NN_tune_trainable_{name}_{seed:05d}_model::nlin={nlin}"
        d.mkdir()
        params = _params(nlin, dropout, seed)
        (d / "params.json").write_text(json.dumps(params))
        torch.manual_seed(seed)
        nets = {}
        for epoch in range(3):
            net = ModelZoosCNN(1, dropout, nlin)
            if name == "t_nan" and epoch >= 1:
                with torch.no_grad():
                    net.module_list[0].weight[0, 0, 0, 0] = math.nan
            if name == "t_relu" and epoch == 2:
                with torch.no_grad():
                    net.module_list[-1].bias[0] = 1e7
            ck = d / (f"checkpoint_{epoch:06d}" if padded else f"checkpoint_{epoch}")
            ck.mkdir()
            torch.save(net.state_dict(), ck / "checkpoints")
            torch.save({"state": {}, "param_groups": []}, ck / "optimizer")
            nets[epoch] = net
        its = {"t_plain": [2, 0, 1], "t_noline": [0, 2], "t_nan": [0, 1, 2, 3]}.get(name,
                                                                                    [0, 1, 2])
        lines = [json.dumps(_result(it, seed)) for it in its]
        if name == "t_nan":
            lines.append('{"train_loss": 1.0, "training_it')  # a crash mid-write
        (d / "result.json").write_text("\n".join(lines) + "\n")
        (d / "progress.csv").write_text("training_iteration\n0\n")
        out[name] = {"models": nets, "params": params, "folder": d.name}
    if crashed:
        d = root / "NN_tune_trainable_t_crashed_00099_model::nlin=tanh"
        d.mkdir()
        (d / "params.json").write_text(json.dumps(_params("tanh", 0.0, 99)))
    return out


def write_modelzoos_resnet(root: Path) -> dict[int, dict[str, torch.Tensor]]:
    """A Model Zoos ResNet-18 zoo: one trial, checkpoints 0 and 1 (torchvision key names)."""
    d = root / "NN_tune_trainable_resnet_00000"
    d.mkdir(parents=True)
    (d / "params.json").write_text(json.dumps(
        {**_params("relu", 0.0, 1, "Resnet18", 3), "optim::optimizer": "sgd", "optim::lr": 0.05,
         "optim::wd": 5e-4, "optim::scheduler": "OneCycleLR", "training::batchsize": 256}))
    states = {}
    for epoch in (0, 1):
        states[epoch] = torchvision_resnet18_state(seed=epoch)
        (d / f"checkpoint_{epoch:06d}").mkdir()
        torch.save(states[epoch], d / f"checkpoint_{epoch:06d}" / "checkpoints")
    (d / "result.json").write_text("\n".join(json.dumps(_result(i, 1)) for i in (0, 1)) + "\n")
    return states


# ------------------------------------------------------------------------------ CTC small CNN

CTC_STEPS = (0, 1, 2, 3, 20, 40, 60, 80, 86)
#: (varname, TensorFlow shape) in layout.csv order: per layer bias, then kernel (HWIO).
CTC_LAYOUT = (("sequential/conv2d/bias:0", (16,)), ("sequential/conv2d/kernel:0", (3, 3, 1, 16)),
              ("sequential/conv2d_1/bias:0", (16,)),
              ("sequential/conv2d_1/kernel:0", (3, 3, 16, 16)),
              ("sequential/conv2d_2/bias:0", (16,)),
              ("sequential/conv2d_2/kernel:0", (3, 3, 16, 16)),
              ("sequential/dense/bias:0", (10,)), ("sequential/dense/kernel:0", (16, 10)))
CTC_CONFIG = ("config.activation", "config.b_init", "config.dataset", "config.dnn_architecture",
              "config.dropout", "config.epochs", "config.epochs_between_checkpoints",
              "config.init_std", "config.l2reg", "config.learning_rate", "config.num_layers",
              "config.num_units", "config.optimizer", "config.random_seed",
              "config.train_fraction", "config.w_init")


def write_ctc(root: Path, models: int = 6, *, seed: int = 0) -> dict:
    """A CTC zoo folder: ``models`` models x the 9 steps, rows interleaved across models (the
    importer must group by ``modeldir``), the last model without step 86, the second one
    NaN from step 60 on; TF layout weights; and NFN's split file for it (pandas header ``0``
    then a permutation of the rows).

    Returns:
        ``{"weights": [rows, 4970] TF-layout array, "metrics": list of row dicts,
        "split_file": Path}``.
    """
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cells = [(m, s) for s in CTC_STEPS for m in range(models) if not (m == models - 1 and s == 86)]
    n = len(cells)
    weights = (rng.standard_normal((n, 4970)) * 0.3).astype(np.float32)
    rows = []
    for i, (m, s) in enumerate(cells):
        if m == 1 and s >= 60:
            weights[i, 5] = np.nan
        acc = 0.1 + 0.005 * s + 0.02 * m
        rows.append({
            "Unnamed: 0": i, "modeldir": f"/cns/ctc/cifar10/{1000 + 37 * m}", "step": s,
            "test_accuracy": acc, "test_loss": 2.3 - 0.01 * s,
            "train_accuracy": acc + 0.03, "train_loss": 2.2 - 0.01 * s,
            "config.activation": "relu" if m % 2 == 0 else "tanh", "config.b_init": "zeros",
            "config.dataset": "cifar10", "config.dnn_architecture": "cnn",
            "config.dropout": 0.05 * m, "config.epochs": 86,
            "config.epochs_between_checkpoints": 20, "config.init_std": 0.1 + 0.1 * m,
            "config.l2reg": 1e-4 * m, "config.learning_rate": 1e-3 * (m + 1),
            "config.num_layers": 3, "config.num_units": 16,
            "config.optimizer": ["adam", "sgd", "rmsprop"][m % 3], "config.random_seed": 100 + m,
            "config.train_fraction": [1.0, 0.5][m % 2],
            "config.w_init": ["he_normal", "glorot_uniform", "orthogonal"][m % 3],
            "laststep": s == 86})  # fmt: skip
    np.save(root / "weights.npy", weights)
    with gzip.open(root / "metrics.csv.gz", "wt", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(root / "layout.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["varname", "start_idx", "end_idx", "size", "shape"])
        start = 0
        for name, shape in CTC_LAYOUT:
            size = math.prod(shape)
            w.writerow([name, start, start + size, size, str(shape)])
            start += size
    split = root.parent / f"{root.name}_split.csv"
    perm = rng.permutation(n)
    split.write_text("0\n" + "\n".join(str(int(i)) for i in perm) + "\n")
    return {"weights": weights, "metrics": rows, "split_file": split}


def ctc_forward_tf(flat: np.ndarray, x_nhwc: np.ndarray, activation: str) -> np.ndarray:
    """The CTC CNN's forward pass in numpy straight from one TF-layout weight row: three
    3x3 stride-2 'valid' convolutions (HWIO kernels), activation, global average pooling,
    dense (in x out kernel)."""
    params, start = {}, 0
    for name, shape in CTC_LAYOUT:
        size = math.prod(shape)
        params[name] = flat[start:start + size].reshape(shape).astype(np.float64)
        start += size
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}[activation]
    h = x_nhwc.astype(np.float64)
    for layer in ("conv2d", "conv2d_1", "conv2d_2"):
        k, b = params[f"sequential/{layer}/kernel:0"], params[f"sequential/{layer}/bias:0"]
        oh, ow = (h.shape[1] - 3) // 2 + 1, (h.shape[2] - 3) // 2 + 1
        out = np.zeros((h.shape[0], oh, ow, k.shape[3]))
        for i in range(oh):
            for j in range(ow):
                patch = h[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :]  # [N, 3, 3, C]
                out[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, k) + b
        h = act(out)
    pooled = h.mean(axis=(1, 2))
    return pooled @ params["sequential/dense/kernel:0"] + params["sequential/dense/bias:0"]


# -------------------------------------------------------------------------------- CNN Wild Park

WILDPARK_CONFIGS = (
    {"n_layers": 2, "n_classes": 10, "channels": [3, 8, 4], "kernel_size": [3, 5],
     "stride": [1, 1], "padding": [1, 2], "residual": [-1, -1], "activation": ["relu", "gelu"]},
    {"n_layers": 3, "n_classes": 10, "channels": [3, 4, 8, 4], "kernel_size": [3, 3, 7],
     "stride": [1, 1, 1], "padding": [1, 1, 3], "residual": [-1, -1, 0],
     "activation": ["tanh", "leaky_relu", "sigmoid"]},
)


def write_wildpark(root: Path, *, pickled_config: bool = False) -> dict[str, list[dict]]:
    """A CNN Wild Park folder: 3 trials (two share an architecture) x 2 checkpoints, each
    ``<trial>/checkpoint_00000N/checkpoint.pt`` holding model, optimizer, config and Ray's
    state. With ``pickled_config`` the config is a Python object (as the published trainer's
    OmegaConf config is), which needs pickle to load.

    Returns:
        trial name -> its checkpoint dicts.
    """
    out = {}
    for t, cfg in enumerate((WILDPARK_CONFIGS[0], WILDPARK_CONFIGS[1], WILDPARK_CONFIGS[0])):
        trial = root / f"NN_tune_trainable_{t:05d}_{t}_model=CNNConfig"
        ckpts = []
        for it in (1, 2):
            torch.manual_seed(10 * t + it)
            net = create_model("park_cnn", in_channels=3, num_classes=10,
                               **{k: v for k, v in _park_kwargs(cfg).items()})
            opt = {"state": {}, "param_groups": [{  # Adam's state_dict, before any step
                "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                "differentiable": False, "fused": None,
                "params": list(range(len(list(net.parameters()))))}]}
            config = types.SimpleNamespace(**cfg) if pickled_config else dict(cfg)
            ck = {"model": net.state_dict(), "optimizer": opt, "config": config,
                  "experiment_id": f"exp{t}", "iteration": it, "timesteps_total": None,
                  "time_total": 1.5 * it, "episodes_total": None, "ray_version": "2.7.1",
                  "last_result": {"test/acc": 0.2 + 0.1 * it + 0.01 * t, "test/loss": 2.0 - it,
                                  "training_iteration": it,
                                  "config": {"seed": t, "batch_size": 128, "optimizer": {
                                      "_target_": "torch.optim.Adam", "lr": 0.001,
                                      "weight_decay": 0.0}}}}  # fmt: skip
            folder = trial / f"checkpoint_{it:06d}"
            folder.mkdir(parents=True)
            torch.save(ck, folder / "checkpoint.pt")
            ckpts.append(ck)
        out[trial.name] = ckpts
    return out


def _park_kwargs(cfg: dict) -> dict:
    return {"channels": cfg["channels"][1:], "kernel_size": cfg["kernel_size"],
            "stride": cfg["stride"], "padding": cfg["padding"], "residual": cfg["residual"],
            "activations": cfg["activation"]}


# ---------------------------------------------------------------------------------------- p-diff


def write_pdiff(root: Path, n: int = 5) -> list[dict[str, torch.Tensor]]:
    """A p-diff task folder: ``checkpoint/<index:04d>_acc<acc>_seed0040_<tag>.pth`` files
    holding the last two BatchNorm layers as float32 (``num_batches_tracked`` included, as
    p-diff's ``finetune.py`` saves them), plus a file that is not a checkpoint."""
    folder = root / "checkpoint"
    folder.mkdir(parents=True)
    states = []
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        state = {}
        for bn in ("layer4.1.bn1", "layer4.1.bn2"):
            state[f"{bn}.weight"] = torch.rand(8, generator=g)
            state[f"{bn}.bias"] = torch.rand(8, generator=g)
            state[f"{bn}.running_mean"] = torch.rand(8, generator=g)
            state[f"{bn}.running_var"] = torch.rand(8, generator=g) + 0.5
            state[f"{bn}.num_batches_tracked"] = torch.tensor(100.0 + i)
        acc = 0.7612 + 0.001 * i
        torch.save(state, folder / f"{10 * i:04d}_acc{acc:.4f}_seed0040_cifar100_resnet18.pth")
        states.append(state)
    (folder / "notes.txt").write_text("not a checkpoint")
    return states
