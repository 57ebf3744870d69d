"""``zoo``: build, inspect and validate model zoos (a thin layer over the Python API)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from modelzoo.clickutil import ZooGroup


@click.group(cls=ZooGroup)
@click.version_option(package_name="modelzoo-toolkit")
def main() -> None:
    """Build, inspect and validate model zoos: populations of trained networks stored as
    Arrow datasets (loadable with `datasets.load_dataset` / `load_from_disk`).

    \b
    Quick start (digits, CPU, seconds):
      zoo build --arch cnn_s --dataset digits --models 16 --epochs 5 --out zoos/demo
      zoo info zoos/demo
    """


@main.command()
@click.argument("recipe", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--arch", help="Architecture (see `zoo archs`), e.g. cnn_s, resnet18.")
@click.option("--dataset", "source", help="Source dataset (see `zoo sources`); default digits.")
@click.option("--models", type=click.IntRange(min=1), help="Number of models to train.")
@click.option("--epochs", type=click.IntRange(min=0),
              help="Training epochs per model (a recipe's checkpoint list is cut to fit).")
@click.option(
    "--checkpoints",
    help="Comma-separated epochs to store, e.g. 0,1,5,10 (default: every epoch).",
)
@click.option("--grid", "grid_items", multiple=True, metavar="NAME=V1,V2",
              help="Hyperparameter values, e.g. --grid lr=1e-3,1e-4 --grid activation=relu,tanh.")
@click.option("--arch-opt", "arch_opts", multiple=True, metavar="KEY=VALUE",
              help="Architecture option, e.g. --arch-opt norm=none --arch-opt width=32 "
                   "(updates a recipe's options).")
@click.option("--name", help="Zoo name (default <arch>-<dataset>).")
@click.option("--max-train", type=click.IntRange(min=1), help="Use only N training images.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where local datasets live (default $MODELZOO_DATA or ~/.cache/modelzoo/data).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output directory; rerun with the same --out to resume an interrupted build.")
@click.option("--group-size", default=64, show_default=True, type=click.IntRange(min=1),
              help="Models trained together (one vectorised population, one resumable unit).")
@click.option("--trainer", type=click.Choice(["population", "loop"]), default="population",
              show_default=True, help="Vectorised population trainer or per-model loop.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Train groups in this process or as Ray tasks.")
@click.option("--address", help="Ray cluster address for --executor ray (default: start one).")
@click.option("--threads", type=click.IntRange(min=1),
              help="Intra-op threads per group (default: the allowed CPUs that are idle, "
                   "from the affinity mask, cgroup quota and current load; Ray: 1 per task).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def build(
    recipe: Path | None,
    arch: str | None,
    source: str | None,
    models: int | None,
    epochs: int | None,
    checkpoints: str | None,
    grid_items: tuple[str, ...],
    arch_opts: tuple[str, ...],
    name: str | None,
    max_train: int | None,
    data_dir: Path | None,
    out: Path,
    group_size: int,
    trainer: str,
    device: str,
    executor: str,
    address: str | None,
    threads: int | None,
    progress: bool,
) -> None:
    """Train a population of networks and write it as a zoo.

    Either give a RECIPE (cards/<zoo>.yaml) or --arch (options override the recipe).

    Kill it at any point and rerun with the same --out: committed models are kept and the
    rest are trained, even with another --group-size, --executor or --threads; the zoo equals
    an uninterrupted build. --trainer and --device (and, for recipes with dropout, the group
    size) change the numbers, so a rerun that changes them is refused.

    \b
    Examples:
      zoo build --arch cnn_s --dataset digits --models 64 --epochs 10 --out zoos/digits
      zoo build cards/digits-cnn_s.yaml --out zoos/digits
      zoo build --arch resnet18 --dataset cifar100 --models 8 --epochs 50 --device cuda --out z
    """
    from modelzoo.builder import build_zoo

    ckpts = None
    if checkpoints:
        try:
            ckpts = [int(x) for x in checkpoints.split(",") if x.strip()]
        except ValueError:
            raise click.BadParameter(
                "use comma-separated integers", param_hint="--checkpoints"
            ) from None
    grid = _parse_grid(grid_items, "--grid") if grid_items else None
    arch_kwargs = (
        {k: v[0] for k, v in _parse_grid(arch_opts, "--arch-opt").items()} if arch_opts else None
    )
    opts = dict(
        out=out, arch=arch, source=source, models=models, epochs=epochs, arch_kwargs=arch_kwargs,
        checkpoint_epochs=ckpts, grid=grid, name=name, max_train=max_train, data_dir=data_dir,
        group_size=group_size, trainer=trainer, device=device, progress=progress,
        threads=threads,
    )  # fmt: skip
    if executor != "local":
        opts.update(executor=executor, address=address)
    if recipe is not None:
        from modelzoo.hub.cli import build_recipe_file

        manifest = build_recipe_file(recipe, **opts)
    else:
        manifest = build_zoo(**opts)
    click.echo(
        f"zoo {manifest.name} v{manifest.version}: {manifest.num_models} models, "
        f"{manifest.num_rows} checkpoints -> {out}\ncontent hash {manifest.content_hash}"
    )


def _parse_grid(items: tuple[str, ...], hint: str) -> dict[str, list]:
    import yaml

    grid: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise click.BadParameter(f"{item!r}: use NAME=V1,V2", param_hint=hint)
        grid[key.strip()] = [yaml.safe_load(v) for v in values.split(",")]
    return grid


@main.command()
def archs() -> None:
    """List registered architectures with parameter counts."""
    from modelzoo.architectures import count_params, create_model, list_archs

    click.echo(f"{'name':<10} {'params (1x28x28)':>17} {'params (3x32x32)':>17}  description")
    for info in list_archs():
        p28 = count_params(create_model(info.name, in_channels=1, image_size=28))
        p32 = count_params(create_model(info.name, in_channels=3, image_size=32))
        click.echo(f"{info.name:<10} {p28:>17,} {p32:>17,}  {info.description}")


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder to look in (default $MODELZOO_DATA or ~/.cache/modelzoo/data).")
def sources(data_dir: Path | None) -> None:
    """List source datasets, their shapes, and where their files go."""
    from modelzoo import sources as src

    for spec in src.list_sources():
        shape = "x".join(str(d) for d in spec.in_shape)
        click.echo(f"{spec.name:<14} {spec.num_classes:>4} classes  {shape:<9} {spec.description}")
        click.echo(f"{'':<14} {spec.where(data_dir)}")


@main.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
def info(path: Path) -> None:
    """Summarise the zoo at PATH."""
    from modelzoo.storage import read_manifest

    m = read_manifest(path)
    click.echo(f"{m.name} v{m.version}  ({m.content_hash})")
    click.echo(f"built with toolkit {m.toolkit_version}, torch {m.torch_version}, {m.created}")
    for key, a in m.architectures.items():
        click.echo(f"architecture {key}: {a.name} {a.n_params:,} params, {len(a.layout)} tensors")
    for s in m.sources.values():
        click.echo(f"source {s.name}: {s.num_classes} classes, input {s.in_shape}, {s.sizes}")
    click.echo(f"{m.num_models} models, {m.num_rows} checkpoints")
    for split, c in sorted(m.split_counts().items()):
        click.echo(f"  {split:<11} {c['models']:>5} models {c['rows']:>7} checkpoints")
    diverged = [k for k, v in m.models.items() if v.status != "ok"]
    click.echo(f"diverged/NaN models: {len(diverged)}")
    if m.recipe.get("kind") == "import":
        o = m.recipe.get("origin", {})
        click.echo(f"imported ({m.recipe.get('format')}) from {o.get('files', {}).get('count')} "
                   f"files of {o.get('folder')} ({o.get('files', {}).get('digest', '')[:19]}...), "
                   f"splits {o.get('splits', {}).get('protocol')}; flags: "
                   f"{', '.join(o.get('flags') or {}) or 'none'}")
    elif m.recipe:
        epochs = m.recipe.get("epochs")
        click.echo(f"epochs {epochs}, checkpoints {m.recipe.get('checkpoint_epochs')}")
    al = m.recipe.get("alignment") if m.recipe else None
    if al:
        click.echo(f"aligned ({al.get('method')}) to {al.get('reference')} at epoch "
                   f"{al.get('epoch')}, from {al.get('source', {}).get('content_hash')}")


@main.command(name="ls")
@click.argument("root", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
def ls_(root: Path) -> None:
    """List the zoos found under ROOT (folders holding a zoo.json), with unfinished builds."""
    from modelzoo.storage import read_manifest

    found = False
    def find(name: str) -> list[Path]:
        return sorted({*root.glob(name), *root.glob(f"*/{name}"), *root.glob(f"*/*/{name}")})

    for mpath in find("zoo.json"):
        m = read_manifest(mpath.parent)
        found = True
        click.echo(f"{str(mpath.parent):<40} {m.name} v{m.version}  {m.num_models} models  "
                   f"{m.num_rows} checkpoints  {m.content_hash[:19]}")
    for b in find(".build"):
        if not (b.parent / "zoo.json").exists():
            found = True
            click.echo(f"{str(b.parent):<40} (unfinished build: rerun `zoo build` to resume)")
    if not found:
        click.echo(f"no zoos under {root}")


@main.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
def validate(path: Path) -> None:
    """Check the zoo at PATH: every shard against its checksum in zoo.json, and the models
    against the recorded plan (every model the recipe plans present once, with all its
    checkpoints, and nothing else).

    Every shard is re-hashed: the verification cache (PATH/.verified.json) that spares the
    other commands re-hashing unchanged shards is not trusted here (it cannot see bit rot
    under unchanged file metadata), only refreshed."""
    from modelzoo.builder.plan import verify_plan
    from modelzoo.storage.verify import check_shards

    r = check_shards(path, use_cache=False)
    m = r.manifest
    click.echo(f"ok: {len(m.files)} shards match zoo.json ({m.content_hash}); "
               f"{r.hashed_bytes / 2**20:.1f} MiB hashed in {r.seconds:.2f} s")
    report = verify_plan(path, m)
    click.echo(f"ok: {report}")


@main.command()
@click.argument("zoo", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="New folder for the aligned zoo (rerun with the same --out to resume).")
@click.option("--reference", default="auto", show_default=True, metavar="auto|MODEL_ID",
              help="Model every other model is matched to: 'auto' picks the train model with "
                   "the median validation accuracy; or a train model id.")
@click.option("--epoch", default="last", show_default=True, metavar="last|N",
              help="Checkpoint epoch the permutations are computed at ('last': the last epoch "
                   "all models share); each model's permutation is applied to all its epochs.")
@click.option("--max-iter", default=100, show_default=True, type=click.IntRange(min=1),
              help="Maximum weight-matching passes over the layers per model.")
@click.option("--name", help="Name of the aligned zoo (default <name>-aligned).")
@click.option("--version", "version", help="Its version (default: the input's).")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check the input's shard checksums first.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def align(zoo: Path, out: Path, reference: str, epoch: str, max_iter: int, name: str | None,
          version: str | None, verify: bool, progress: bool) -> None:
    """Align every model of ZOO to one reference model (weight matching) into a new zoo.

    Hidden units can be permuted without changing what a network computes, so models of a
    zoo store equivalent weights in unrelated orders. This finds, for each model, the
    permutation of its hidden units closest to the reference (git re-basin weight matching:
    a linear assignment per layer, repeated until nothing changes) and writes every
    checkpoint permuted. Functions, ids, splits, hyperparameters and metrics stay the same;
    ZOO is not modified. Architectures with skip connections (ResNets) are refused.

    \b
    Examples:
      zoo align zoos/digits --out zoos/digits-aligned
      zoo align zoos/digits --out zoos/a --reference cnn_s-digits-0a1b2c3d4e5f --epoch 5
      zoo diff zoos/digits zoos/digits-aligned     # same models, weights changed
      sane train --zoo zoos/digits-aligned --permutation-prob 0 --out runs/sane-aligned
    """
    from modelzoo.align import align_zoo

    ep: int | str = epoch
    if epoch != "last":
        try:
            ep = int(epoch)
        except ValueError:
            raise click.BadParameter("use an integer or 'last'", param_hint="--epoch") from None
    m = align_zoo(zoo=zoo, out=out, reference=reference, epoch=ep, max_iter=max_iter,
                  name=name, version=version, verify=verify, progress=progress)  # fmt: skip
    al = m.recipe["alignment"]
    click.echo(
        f"zoo {m.name} v{m.version}: {m.num_models} models aligned to {al['reference']} at "
        f"epoch {al['epoch']} ({al['models_moved']} permuted) -> {out}\n"
        f"mean L2 distance to the reference: {al['mean_l2_to_reference_before']:.4g} -> "
        f"{al['mean_l2_to_reference_after']:.4g}\ncontent hash {m.content_hash}"
    )


@main.command(name="import")
@click.argument("format_name", metavar="FORMAT")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output zoo folder; rerun the same command to resume an interrupted import.")
@click.option("--splits", help="Split protocol (default: the format's; see `zoo formats`), e.g. "
                               "modelzoos, nfn, hash.")
@click.option("--split-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The published split file the protocol reads (nfn: NFN's "
                   "<dataset>_split.csv; neural-graphs: cnn_park_splits.json).")
@click.option("--source", help="Training dataset name (default: guessed from the folder name).")
@click.option("--name", help="Zoo name (default: from the format and the folder).")
@click.option("--version", "version", default="1.0.0", show_default=True,
              help="Semantic version of the zoo.")
@click.option("--license", "license_", help="License id (default: the published zoo's, where "
                                            "known, else 'unknown').")
@click.option("--progress/--no-progress", default=True, show_default=True)
def import_cmd(format_name: str, path: Path, out: Path, splits: str | None,
               split_file: Path | None, source: str | None, name: str | None, version: str,
               license_: str | None, progress: bool) -> None:
    """Import a public zoo in FORMAT from its files at PATH (a folder, or a zip / tar archive
    of one, unpacked safely first) into a zoo at --out.

    Reads the exact layout the authors published (never unpickling: a file that needs pickle
    is refused, naming it), maps every checkpoint onto a registered architecture, flags
    NaN/exploding checkpoints as `zoo build` does, assigns splits by model with the chosen
    protocol, and records the origin (format, file checksums, split file) in zoo.json: the
    same files give the same content hash. The result validates (`zoo validate`), publishes
    (`zoo publish`) and loads with `datasets.load_dataset`. Formats: `zoo formats`.

    \b
    Examples:
      zoo import modelzoos tune_zoo_mnist_hyperparameter_10_random_seeds --out zoos/mz-mnist
      zoo import ctc cifar10.tar.xz --splits nfn --split-file cifar10_split.csv --out zoos/c10
      zoo import wildpark cifar10_zooV2 --out zoos/wildpark
      zoo import pdiff dataset/cifar100_resnet18 --out zoos/pdiff
    """
    from modelzoo.importers import import_zoo

    m = import_zoo(format=format_name, path=path, out=out, splits=splits, split_file=split_file,
                   source=source, name=name, version=version, license=license_,
                   progress=progress)  # fmt: skip
    origin = m.recipe.get("origin", {})
    click.echo(f"zoo {m.name} v{m.version}: {m.num_models} models, {m.num_rows} checkpoints "
               f"from {origin.get('files', {}).get('count')} {format_name} files -> {out}")
    counts = ", ".join(f"{s} {c['models']}" for s, c in sorted(m.split_counts().items()))
    click.echo(f"splits ({origin.get('splits', {}).get('protocol')}): {counts}")
    status: dict[str, int] = {}
    for entry in m.models.values():
        status[entry.status] = status.get(entry.status, 0) + 1
    click.echo("models by status: " + ", ".join(f"{k} {v}" for k, v in sorted(status.items())))
    for key, value in (origin.get("flags") or {}).items():
        n = len(value) if isinstance(value, (list, dict)) else value
        click.echo(f"flag {key}: {n}" + (" (listed in zoo.json)" if isinstance(
            value, (list, dict)) else ""))
    click.echo(f"content hash {m.content_hash}")


@main.command()
def formats() -> None:
    """List the formats `zoo import` reads, with their split protocols."""
    from modelzoo.importers import iter_formats, protocols

    for fmt in iter_formats():
        click.echo(f"{fmt.name:<10} {fmt.description}")
        for p, rule in protocols(fmt).items():
            mark = " (default)" if p == fmt.default_split else ""
            click.echo(f"{'':<10}   --splits {p}{mark}: {rule}")
        if fmt.example:
            click.echo(f"{'':<10}   e.g. {fmt.example}")


from modelzoo.hub.cli import diff, merge, publish  # noqa: E402

main.add_command(merge)
main.add_command(diff)
main.add_command(publish)


if __name__ == "__main__":
    sys.exit(main())
