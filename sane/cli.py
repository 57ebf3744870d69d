"""``sane`` command line: a thin click layer over :mod:`sane`'s train/embed/sample."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import click
from pydantic.fields import FieldInfo

from modelzoo.clickutil import ZooGroup, verify_option
from sane.config import SaneConfig


@click.group(cls=ZooGroup)
def main() -> None:
    """SANE: learn, embed and sample neural network weights from a model zoo.

    \b
    Typical use:
      sane train  --zoo zoos/digits --out runs/sane
      sane embed  --run runs/sane --zoo zoos/digits --out runs/sane/embeddings
      sane sample --run runs/sane --zoo zoos/digits --out runs/sane/samples -n 8
    """


#: SaneConfig fields with their own `sane train` option or none at all (tuples).
_NOT_GENERATED = ("epochs_range", "erase_scale", "erase_ratio")


def _plain(text: str | None) -> str:
    """Docstring markup as terminal text: ``x`` -> x, :func:`sane.sample` -> sane.sample."""
    return re.sub(r":\w+:`([^`]*)`", r"\1", " ".join((text or "").split())).replace("``", "")


class _OptionalFloat(click.ParamType):
    """A float, or ``none`` / ``off`` for None."""

    name = "FLOAT|none"

    def convert(self, value: Any, param: Any, ctx: Any) -> float | None:
        if value is None or isinstance(value, float):
            return value
        if str(value).lower() in ("none", "off"):
            return None
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number or 'none'", param, ctx)


def _option_type(field: FieldInfo) -> Any:
    """click type of a SaneConfig field: its range (``ge``/``gt``/``le`` of the field) for
    numbers, its choices for Literals (None: no option)."""
    hint = field.annotation
    if hint in (int, float):
        bounds: dict[str, Any] = {}
        for m in field.metadata:
            for key, arg in (("ge", "min"), ("gt", "min"), ("le", "max")):
                if getattr(m, key, None) is not None:
                    bounds[arg] = getattr(m, key)
                    bounds["min_open"] = bounds.get("min_open", False) or key == "gt"
        if not bounds:
            return hint
        rng = click.IntRange if hint is int else click.FloatRange
        if hint is int:
            bounds.pop("min_open", None)
        return rng(**bounds)
    if hint is str:
        return str
    if typing.get_origin(hint) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(hint)])
    args = typing.get_args(hint)
    if len(args) == 2 and type(None) in args:
        return _OptionalFloat()
    return None


def _override_options(fn: Any) -> Any:
    """One option per SaneConfig field (``--d-model``, ``--recon-norm`` ...), generated from
    the model's fields (type, range, description, default), so new config fields reach
    ``sane train`` without CLI changes."""
    for name, field in reversed(SaneConfig.model_fields.items()):
        if name in _NOT_GENERATED:
            continue
        flag = f"--{name.replace('_', '-')}"
        help_ = _plain(field.description) + f" [config default: {field.default!r}]"
        if field.annotation is bool:
            fn = click.option(f"{flag}/--no-{name.replace('_', '-')}", name, default=None,
                              help=help_)(fn)
            continue
        typ = _option_type(field)
        if typ is None:  # pragma: no cover - every other field type is handled above
            raise TypeError(f"no CLI type for SaneConfig.{name}: {field.annotation!r}")
        fn = click.option(flag, name, type=typ, default=None, help=help_)(fn)
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
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Intra-op threads (default: the count a resumed run recorded, else 1, so "
                   "that the same command gives the same numbers on any machine of the same "
                   "CPU kind; other counts agree to about 1e-5 in the losses, not bit for "
                   "bit).")
@verify_option("the run then records a zoo whose data was not checked.")
@_override_options
def train(
    zoo: Path, out: Path, config_file: Path | None, epochs_range: tuple[int, int] | None,
    quiet: bool, threads: int | None, verify: bool, **overrides: Any,
) -> None:
    """Train SANE on a zoo (resumes OUT/ckpt.pt if present) and print the checkpoint path."""
    from sane.train import train as train_fn

    cfg = SaneConfig.from_yaml(config_file) if config_file else SaneConfig()
    given = {k for k in overrides
             if click.get_current_context().get_parameter_source(k)
             is click.core.ParameterSource.COMMANDLINE}
    changes = {k: overrides[k] for k in given}
    if epochs_range:
        changes["epochs_range"] = tuple(epochs_range)
    cfg = SaneConfig.from_dict({**cfg.to_dict(), **changes})
    path = train_fn(zoo=zoo, out=out, config=cfg, progress=not quiet, threads=threads,
                    verify=verify)
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
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Intra-op threads (fixed, so that the embeddings' digits do not depend on "
                   "the machine's load).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@verify_option("the embeddings then come from unchecked data.")
def embed(run: Path, zoo: Path, out: Path, split: str | None,
          epochs_range: tuple[int, int] | None, batch_size: int, device: str | None,
          threads: int, quiet: bool, verify: bool) -> None:
    """Embed every checkpoint of ZOO (mean of its latent tokens) into an Arrow dataset."""
    from modelzoo.threads import limit_threads
    from sane.embed import embed as embed_fn

    with limit_threads(threads):
        ds = embed_fn(run=run, zoo=zoo, out=out, split=split, batch_size=batch_size,
                      epochs_range=tuple(epochs_range) if epochs_range else None,
                      device=device, progress=not quiet, verify=verify)
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
@click.option("--anchor-top-k", type=int, default=None,
              help="Anchor models (best by val_acc; default: the run's sample_anchors, 5 "
                   "unless set).")
@click.option("--kde-mode", type=click.Choice(["joint", "token", "individual"]), default=None,
              help="One KDE over whole latent sequences, one per token position, or one per "
                   "latent scalar (default: the run's sample_mode, joint unless set).")
@click.option("--bandwidth", type=float, default=None,
              help="KDE bandwidth in latent space (default: the run's sample_bandwidth, 0.05 "
                   "unless set).")
@click.option("--candidates", type=int, default=None,
              help="Models drawn per round for subsampled/bootstrapped (default 4n).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Where the zoo's source dataset is (scoring for subsampled/bootstrapped).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--device", default=None, help="Device (default: the run's).")
@verify_option("the anchors then come from unchecked data.")
def sample(run: Path, zoo: Path, out: Path, n: int, architecture: str | None, method: str,
           anchor_top_k: int | None, kde_mode: str | None, bandwidth: float | None,
           candidates: int | None,
           data_dir: Path | None, seed: int, device: str | None, verify: bool) -> None:
    """Sample N new models with SANE and save them as safetensors."""
    from sane.sample import sample as sample_fn

    path = sample_fn(run=run, zoo=zoo, out=out, n=n, architecture=architecture,
                     method=method, anchor_top_k=anchor_top_k, kde_mode=kde_mode,
                     bandwidth=bandwidth, candidates=candidates, data_dir=data_dir,
                     seed=seed, device=device, verify=verify)
    index = json.loads(path.read_text())
    click.echo(f"{len(index['samples'])} {index['architecture']} models -> {path.parent}")


if __name__ == "__main__":
    main()
