"""``zoo merge|diff|publish``: share, version and mix zoos (thin click layer over the API).

These commands are registered on the ``zoo`` group (``modelzoo.cli``); this module also runs
on its own: ``python -m modelzoo.hub.cli merge ...``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from modelzoo.clickutil import ZooGroup
from modelzoo.errors import ZooError
from modelzoo.storage.manifest import Manifest


def parse_size(text: str) -> int:
    """``"500MB"`` -> 500000000, ``"1GiB"`` -> 1073741824, ``"1234"`` -> 1234 (bytes).

    Units as in ``datasets``' ``max_shard_size`` (its own parser): KB/MB/GB/TB powers of
    1000, KiB/MiB/GiB/TiB powers of 1024.
    """
    from datasets.utils.py_utils import convert_file_size_to_int

    text = text.strip()
    try:
        n = int(text) if text.isdigit() else convert_file_size_to_int(text.replace(" ", ""))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size like 500MB or 1GiB") from None
    if n < 1:
        raise click.BadParameter("size must be at least 1 byte")
    return n


def build_recipe_file(recipe: str | Path, **kwargs: Any) -> Manifest:
    """Build a recipe file: a ``kind: mix`` recipe with ``build_mix``, else ``build_zoo``.

    The ``zoo build`` command calls this so ``zoo build cards/hetero-mix.yaml --out z`` works.
    For a mix, ``models``/``epochs``/``max_train``/``data_dir``/``group_size``/``trainer``/
    ``device``/``progress`` apply to every member; other build options are refused.
    """
    from modelzoo.hub.mix import build_mix, is_mix_file

    if not is_mix_file(recipe):
        from modelzoo.builder import build_zoo

        return build_zoo(recipe=recipe, **kwargs)
    allowed = {"out", "models", "epochs", "max_train", "data_dir", "group_size", "trainer",
               "device", "progress", "threads"}  # fmt: skip
    bad = sorted(k for k, v in kwargs.items() if v is not None and k not in allowed)
    if bad:
        opts = ", ".join("--" + b.replace("_", "-") for b in bad)
        raise ZooError(f"{recipe} is a mix of recipes: {opts} cannot be applied to it")
    return build_mix(mix=recipe, **{k: v for k, v in kwargs.items() if k in allowed})


@click.group(cls=ZooGroup)
def main() -> None:
    """Merge, diff and publish model zoos."""


@main.command()
@click.argument("zoos", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="New folder for the merged zoo (written completely or not at all).")
@click.option("--name", help="Zoo name (default: the input names joined by +).")
@click.option("--version", "version", default="1.0.0", show_default=True,
              help="Semantic version of the merged zoo.")
@click.option("--description", default="", help="One-paragraph description for the card.")
@click.option("--license", "license_", help="License id (default: the inputs' license).")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check every input shard's checksum first.")
def merge(
    zoos: tuple[Path, ...],
    out: Path,
    name: str | None,
    version: str,
    description: str,
    license_: str | None,
    verify: bool,
) -> None:
    """Merge ZOOS (any architectures and source datasets) into one heterogeneous zoo.

    \b
    Every model keeps its split; a model in two inputs is kept once if identical and refused
    if its content differs. The result has one config per (architecture, source) plus `all`:
      load_dataset(OUT)                  # all models
      load_dataset(OUT, "cnn_s-digits")  # one architecture on one source

    \b
    Example:
      zoo merge zoos/cnn_s-digits zoos/mlp-digits --out zoos/mix --version 1.0.0
    """
    from modelzoo.hub.configs import zoo_configs
    from modelzoo.hub.merge import merge_zoos

    m = merge_zoos(zoos=list(zoos), out=out, name=name, version=version,
                   description=description, license=license_, verify=verify)  # fmt: skip
    click.echo(f"zoo {m.name} v{m.version}: {m.num_models} models, {m.num_rows} checkpoints "
               f"-> {out}\ncontent hash {m.content_hash}")  # fmt: skip
    for c in zoo_configs(m):
        split_txt = ", ".join(f"{s} {n}" for s, n in c.models.items())
        click.echo(f"  config {c.name:<24} models: {split_txt}")


@main.command()
@click.argument("old", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
@click.option("--exit-code", is_flag=True, help="Exit with 1 when the zoos differ.")
def diff(old: Path, new: Path, as_json: bool, exit_code: bool) -> None:
    """Say what changed from zoo OLD to zoo NEW.

    Models added/removed/changed, split moves, metadata (version, recipe fields, layouts,
    source fingerprints) and version-policy warnings.
    """
    from modelzoo.hub.versioning import diff_zoos

    d = diff_zoos(old=old, new=new)
    if as_json:
        click.echo(json.dumps(d.model_dump(mode="json"), indent=1, default=str))
    else:
        click.echo(d.summary())
    if exit_code and not d.identical:
        sys.exit(1)


@main.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path),
              help="Write the Hub repository layout here (a new folder per version).")
@click.option("--repo-id", help="Upload to this Hub dataset repository (user/name).")
@click.option("--revision", help="Hub tag for this version (default v<version>).")
@click.option("--private", is_flag=True, help="Create the Hub repository as private.")
@click.option("--max-shard-size", default="500MB", show_default=True,
              help="Maximum size of one Parquet shard (e.g. 100MB, 1GiB).")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check the zoo's shard checksums first.")
def publish(
    path: Path,
    out: Path | None,
    repo_id: str | None,
    revision: str | None,
    private: bool,
    max_shard_size: str,
    verify: bool,
) -> None:
    """Publish the zoo at PATH as a Hugging Face dataset (Parquet shards + dataset card).

    \b
    Local folder (loads offline with `datasets.load_dataset(DIR)`):
      zoo publish zoos/demo --out hub/demo-v1.0.0
    Hub (creates the repo, uploads, tags the commit v<version>):
      zoo publish zoos/demo --repo-id user/digits-cnn_s
    Users then read a fixed version with:
      load_dataset("user/digits-cnn_s", revision="v1.0.0")
    A published version never changes: the same version and content again is a no-op,
    different content under the same folder or tag is refused (bump the version).
    """
    from modelzoo.hub.publish import publish_zoo

    if out is None and repo_id is None:
        raise click.UsageError("give --out DIR and/or --repo-id user/name")
    r = publish_zoo(zoo=path, out=out, repo_id=repo_id, revision=revision, private=private,
                    max_shard_size=parse_size(max_shard_size), verify=verify)  # fmt: skip
    if r.folder is not None:
        state = "already published (unchanged)" if r.unchanged and not r.repo_id else "written"
        click.echo(f"{r.folder}: {state}, {len(r.files)} files")
    if r.repo_id:
        if r.unchanged:
            click.echo(f"{r.repo_id}@{r.revision} already holds this version: nothing to do")
        else:
            click.echo(f"uploaded {r.repo_id}@{r.revision} (commit {r.commit}): {r.url}")
        click.echo(f'read it with: load_dataset("{r.repo_id}", revision="{r.revision}")')


if __name__ == "__main__":
    sys.exit(main())
