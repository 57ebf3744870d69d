"""``sane`` command line: a thin click layer over :mod:`sane`'s train/embed/sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from modelzoo.errors import ZooError
from sane.config import SaneConfig


def _fail(e: ZooError) -> None:
    raise click.ClickException(str(e)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """SANE: learn, embed and sample neural network weights from a model zoo.

    \b
    Typical use:
      sane train  --zoo zoos/digits --out runs/sane
      sane embed  --run runs/sane --zoo zoos/digits --out runs/sane/embeddings
      sane sample --run runs/sane --zoo zoos/digits --out runs/sane/samples -n 8
    """


_OVERRIDES: list[tuple[str, type, str]] = [
    ("epochs", int, "Training epochs."),
    ("batch_size", int, "Models (windows) per step."),
    ("lr", float, "Peak learning rate."),
    ("weight_decay", float, "AdamW weight decay."),
    ("d_model", int, "Transformer width."),
    ("n_heads", int, "Attention heads."),
    ("n_layers", int, "Encoder and decoder layers each."),
    ("latent_dim", int, "Latent token size."),
    ("token_size", int, "Weights per token."),
    ("window_size", int, "Tokens per training window."),
    ("gamma", float, "Contrastive weight: gamma*NT-Xent + (1-gamma)*MSE."),
    ("permutation_prob", float,
     "Probability that a view is randomly neuron-permuted (0: canonical views only, e.g. "
     "on a zoo aligned with `zoo align`)."),
    ("seed", int, "Random seed."),
    ("device", str, "auto, cpu or cuda[:i]."),
    ("num_workers", int, "DataLoader worker processes."),
]


def _override_options(fn: Any) -> Any:
    for name, typ, help_ in reversed(_OVERRIDES):
        fn = click.option(f"--{name.replace('_', '-')}", name, type=typ, default=None,
                          help=help_)(fn)
    return fn


@main.command()
@click.option("--zoo", required=True, type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Zoo directory to train on.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Run directory; an existing ckpt.pt there is resumed.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="YAML file of SaneConfig fields (options below override it).")
@click.option("--epochs-range", nargs=2, type=int, default=None,
              help="Inclusive first and last checkpoint epoch to train on.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_override_options
def train(
    zoo: Path, out: Path, config_file: Path | None, epochs_range: tuple[int, int] | None,
    quiet: bool, **overrides: Any,
) -> None:
    """Train SANE on a zoo (resumes OUT/ckpt.pt if present) and print the checkpoint path."""
    from sane.train import train as train_fn

    try:
        cfg = SaneConfig.from_yaml(config_file) if config_file else SaneConfig()
        changes = {k: v for k, v in overrides.items() if v is not None}
        if epochs_range:
            changes["epochs_range"] = tuple(epochs_range)
        cfg = SaneConfig.from_dict({**cfg.to_dict(), **changes})
        path = train_fn(zoo=zoo, out=out, config=cfg, progress=not quiet)
    except ZooError as e:
        _fail(e)
    click.echo(str(path))


@main.command()
@click.option("--run", required=True, type=click.Path(exists=True, path_type=Path),
              help="SANE run directory (or its ckpt.pt).")
@click.option("--zoo", required=True, type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Zoo whose models are embedded.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output directory of the embeddings dataset (datasets.load_from_disk).")
@click.option("--split", type=click.Choice(["train", "validation", "test"]), default=None,
              help="Only this split (default: all).")
@click.option("--epochs-range", nargs=2, type=int, default=None,
              help="Inclusive first and last checkpoint epoch to embed (default: all).")
@click.option("--batch-size", type=int, default=64, show_default=True,
              help="Windows per forward pass.")
@click.option("--device", default=None, help="Device (default: the run's).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def embed(run: Path, zoo: Path, out: Path, split: str | None,
          epochs_range: tuple[int, int] | None, batch_size: int, device: str | None,
          quiet: bool) -> None:
    """Embed every checkpoint of ZOO (mean of its latent tokens) into an Arrow dataset."""
    from sane.embed import embed as embed_fn

    try:
        ds = embed_fn(run=run, zoo=zoo, out=out, split=split, batch_size=batch_size,
                      epochs_range=tuple(epochs_range) if epochs_range else None,
                      device=device, progress=not quiet)
    except ZooError as e:
        _fail(e)
    click.echo(f"{len(ds)} embeddings -> {out}")


@main.command()
@click.option("--run", required=True, type=click.Path(exists=True, path_type=Path),
              help="SANE run directory (or its ckpt.pt).")
@click.option("--zoo", required=True, type=click.Path(exists=True, file_okay=False,
              path_type=Path), help="Zoo whose best models are the anchors.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output directory: sample_*.safetensors + index.json.")
@click.option("-n", "n", type=int, required=True, help="Number of models to sample.")
@click.option("--architecture", default=None,
              help="Architecture key in the zoo (needed if it has several).")
@click.option("--method", type=click.Choice(["kde", "subsampled", "bootstrapped"]),
              default="kde", show_default=True, help="Sampling method.")
@click.option("--anchor-top-k", type=int, default=5, show_default=True,
              help="Anchor models (best by val_acc).")
@click.option("--kde-mode", type=click.Choice(["joint", "token"]), default="joint",
              show_default=True,
              help="One KDE over whole latent sequences, or one per token position.")
@click.option("--bandwidth", type=float, default=0.05, show_default=True,
              help="KDE bandwidth in latent space.")
@click.option("--candidates", type=int, default=None,
              help="Models drawn per round for subsampled/bootstrapped (default 4n).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Where the zoo's source dataset is (scoring for subsampled/bootstrapped).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--device", default=None, help="Device (default: the run's).")
def sample(run: Path, zoo: Path, out: Path, n: int, architecture: str | None, method: str,
           anchor_top_k: int, kde_mode: str, bandwidth: float, candidates: int | None,
           data_dir: Path | None, seed: int, device: str | None) -> None:
    """Sample N new models with SANE and save them as safetensors."""
    from sane.sample import sample as sample_fn

    try:
        path = sample_fn(run=run, zoo=zoo, out=out, n=n, architecture=architecture,
                         method=method, anchor_top_k=anchor_top_k, kde_mode=kde_mode,
                         bandwidth=bandwidth, candidates=candidates, data_dir=data_dir,
                         seed=seed, device=device)
    except ZooError as e:
        _fail(e)
    index = json.loads(path.read_text())
    click.echo(f"{len(index['samples'])} {index['architecture']} models -> {path.parent}")


if __name__ == "__main__":
    main()
