"""Merging zoos of different architectures and source datasets into one heterogeneous zoo.

A merged zoo keeps the zoo row schema with variable-length weights (``zoo_schema(None)``) and
one *config* per (architecture, source) pair, each written by a
:class:`~modelzoo.storage.writer.ZooWriter` into its own folder::

    zoo.json                            manifest of the whole merged zoo (written last)
    README.md                           YAML ``configs``: one per pair plus ``all`` (default)
    data/<config>/<split>/data-g*.arrow shards (one group per input zoo)
    data/<config>/zoo.json              the config on its own (a valid zoo, ``load_zoo`` reads it)

so ``datasets.load_dataset(path)`` gives every model and ``load_dataset(path, "cnn_s-digits")``
one pair. Mix recipes (several recipes built, then merged) live in :mod:`modelzoo.hub.mix`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import torch

from modelzoo._version import __version__
from modelzoo.errors import CorruptZooError, StorageError, ZooError
from modelzoo.hub.cards import local_card
from modelzoo.hub.configs import config_names, zoo_configs
from modelzoo.hub.staging import commit_dir, staging_dir
from modelzoo.hub.stream import iter_zoo_batches, model_hashes_where
from modelzoo.hub.versioning import check_version
from modelzoo.storage.atomic import atomic_write_bytes
from modelzoo.storage.manifest import (
    MANIFEST_NAME,
    ArchitectureEntry,
    FileEntry,
    Manifest,
    ModelEntry,
    SourceEntry,
    content_hash,
    read_manifest,
    split_hashes,
)
from modelzoo.storage.reader import verify_zoo
from modelzoo.storage.schema import zoo_schema
from modelzoo.storage.writer import BUILD_DIR, GroupWriter, ZooWriter


class MergeConflictError(ZooError):
    """Two input zoos disagree about a model (same id, different content)."""


def _short(fingerprint: str) -> str:
    return fingerprint.split(":")[-1][:8]


def _arch_signature(entry: ArchitectureEntry) -> str:
    return json.dumps(
        {
            "name": entry.name,
            "kwargs": entry.kwargs,
            "layout": [s.model_dump(mode="json") for s in entry.layout],
        },
        sort_keys=True,
        default=str,
    )


@dataclass
class _Input:
    root: Path
    manifest: Manifest
    arch_map: dict[str, str] = field(default_factory=dict)
    source_map: dict[str, str] = field(default_factory=dict)
    skip: set[str] = field(default_factory=set)


@dataclass
class _Plan:
    inputs: list[_Input]
    architectures: dict[str, ArchitectureEntry]
    sources: dict[str, SourceEntry]
    configs: dict[tuple[str, str], str]


def _plan_sources(inputs: list[_Input]) -> dict[str, SourceEntry]:
    by_key: dict[str, dict[str, SourceEntry]] = {}
    for inp in inputs:
        for key, s in inp.manifest.sources.items():
            by_key.setdefault(key, {})[s.fingerprint] = s
    out: dict[str, SourceEntry] = {}
    rename: dict[tuple[str, str], str] = {}
    for key, fps in by_key.items():
        if len(fps) == 1:
            out[key] = next(iter(fps.values()))
            continue
        for fp, s in fps.items():  # same name, different data (e.g. another max_train subset)
            new = f"{s.name}@{_short(fp)}"
            out[new] = s
            rename[(key, fp)] = new
    for inp in inputs:
        for key, s in inp.manifest.sources.items():
            inp.source_map[key] = rename.get((key, s.fingerprint), key)
    return out


def _plan_architectures(inputs: list[_Input]) -> dict[str, ArchitectureEntry]:
    # (input index, key) -> signature; signature -> entry; sources used per (input, key)
    sig_of: dict[tuple[int, str], str] = {}
    entry_of: dict[str, ArchitectureEntry] = {}
    used: dict[tuple[int, str], set[str]] = {}
    for i, inp in enumerate(inputs):
        for key, a in inp.manifest.architectures.items():
            sig = _arch_signature(a)
            sig_of[(i, key)] = sig
            entry_of[sig] = a
        for m in inp.manifest.models.values():
            used.setdefault((i, m.architecture), set()).add(inp.source_map.get(m.source, m.source))
    key_sigs: dict[str, list[str]] = {}
    for (_, key), sig in sig_of.items():
        if sig not in key_sigs.setdefault(key, []):
            key_sigs[key].append(sig)
    new_key: dict[str, str] = {}  # signature -> merged key
    for key, sigs in key_sigs.items():
        if len(sigs) == 1:
            new_key.setdefault(sigs[0], key)
            continue
        srcs = {
            sig: frozenset().union(*(used.get(ik, set()) for ik, s in sig_of.items() if s == sig))
            for sig in sigs
        }
        by_source = len({s for s in srcs.values()}) == len(sigs) and all(srcs.values())
        disjoint = sum(len(s) for s in srcs.values()) == len(frozenset().union(*srcs.values()))
        for sig in sigs:
            name = entry_of[sig].name
            if by_source and disjoint:
                label = "+".join(sorted(srcs[sig]))
            else:
                label = hashlib.sha256(sig.encode()).hexdigest()[:8]
            new_key.setdefault(sig, f"{name}@{label}")
    # a renamed key may collide with a key kept as is: disambiguate with the signature hash
    taken: dict[str, str] = {}
    for sig, key in list(new_key.items()):
        if key in taken and taken[key] != sig:
            key = f"{key}@{hashlib.sha256(sig.encode()).hexdigest()[:8]}"
            new_key[sig] = key
        taken[key] = sig
    for (i, key), sig in sig_of.items():
        inputs[i].arch_map[key] = new_key[sig]
    return {new_key[sig]: entry_of[sig] for sig in new_key}


def _plan_models(inputs: list[_Input]) -> None:
    """Keep one copy of models present in several inputs; refuse ones that differ."""
    where: dict[str, list[int]] = {}
    for i, inp in enumerate(inputs):
        for mid in inp.manifest.models:
            where.setdefault(mid, []).append(i)
    deep: dict[int, set[str]] = {}
    for mid, idx in where.items():
        if len(idx) < 2:
            continue
        labels = {
            (
                inputs[i].manifest.models[mid].sha256,
                inputs[i].arch_map[inputs[i].manifest.models[mid].architecture],
                inputs[i].source_map[inputs[i].manifest.models[mid].source],
            )
            for i in idx
        }
        if len(labels) > 1:  # relabelled (e.g. from an earlier merge) or really different
            for i in idx:
                deep.setdefault(i, set()).add(mid)
    hashes = {
        i: model_hashes_where(
            inputs[i].root, inputs[i].manifest, ids,
            replace={"architecture": inputs[i].arch_map, "source": inputs[i].source_map},
        )  # fmt: skip
        for i, ids in deep.items()
    }
    for mid, idx in where.items():
        first = idx[0]
        for i in idx[1:]:
            a, b = inputs[first].manifest.models[mid], inputs[i].manifest.models[mid]
            if mid in deep.get(i, ()) and hashes[first].get(mid) != hashes[i].get(mid):
                raise MergeConflictError(
                    f"model {mid} is in both {inputs[first].root} and {inputs[i].root} with "
                    f"different content (weights, metrics or split: {a.split}/{b.split}); drop "
                    "it from one zoo (or rebuild one of them) before merging"
                )
            inputs[i].skip.add(mid)  # identical copy: keep the first one


def _plan(roots: Sequence[Path], verify: bool) -> _Plan:
    inputs = []
    for r in roots:
        if not r.is_dir():
            raise CorruptZooError(f"{r} is not a model zoo directory")
        inputs.append(_Input(r, verify_zoo(r) if verify else read_manifest(r)))
    sources = _plan_sources(inputs)
    architectures = _plan_architectures(inputs)
    _plan_models(inputs)
    pairs = {
        (inp.arch_map[m.architecture], inp.source_map[m.source])
        for inp in inputs
        for mid, m in inp.manifest.models.items()
        if mid not in inp.skip
    }
    configs = config_names(pairs, {k: a.name for k, a in architectures.items()})
    return _Plan(inputs, architectures, sources, configs)


def _map_column(table: pa.Table, name: str, mapping: dict[str, str]) -> pa.Table:
    if all(k == v for k, v in mapping.items()):
        return table
    values = [mapping.get(v, v) for v in table.column(name).to_pylist()]
    idx = table.schema.get_field_index(name)
    return table.set_column(idx, name, pa.array(values, pa.string()))


def _stream_inputs(plan: _Plan, writers: dict[str, ZooWriter]) -> None:
    schema = zoo_schema(None)
    for gi, inp in enumerate(plan.inputs):
        groups: dict[str, GroupWriter] = {}
        try:
            for _f, batch in iter_zoo_batches(inp.root, inp.manifest):
                table = pa.Table.from_batches([batch])
                if inp.skip:
                    keep = pc.invert(pc.is_in(table.column("model_id"), pa.array(list(inp.skip))))
                    table = table.filter(keep)
                if not len(table):
                    continue
                table = _map_column(table, "architecture", inp.arch_map)
                table = _map_column(table, "source", inp.source_map)
                table = table.cast(schema)
                pair_col = pc.binary_join_element_wise(
                    table.column("architecture"), table.column("source"), "\t"
                )
                for pair in pc.unique(pair_col).to_pylist():
                    arch, src = pair.split("\t", 1)
                    cfg = plan.configs[(arch, src)]
                    if cfg not in groups:
                        groups[cfg] = writers[cfg].open_group(gi)
                    groups[cfg].write(table.filter(pc.equal(pair_col, pair)))
        except BaseException:
            for g in groups.values():
                g.abort()
            raise
        for g in groups.values():
            g.commit()


def merge_zoos(
    *,
    zoos: Sequence[str | Path],
    out: str | Path,
    name: str | None = None,
    version: str = "1.0.0",
    description: str = "",
    license: str | None = None,
    citation: str = "",
    card: str = "",
    verify: bool = True,
    recipe: dict[str, Any] | None = None,
) -> Manifest:
    """Merge zoos of any architectures and source datasets into one heterogeneous zoo.

    Rows are streamed batch by batch (never a whole zoo in memory) into one
    :class:`ZooWriter` per (architecture, source) config; every model keeps the split of its
    input zoo. The output appears only when complete (it is written to a temp folder next to
    ``out`` and renamed at the end).

    Args:
        zoos: input zoo directories (at least one).
        out: output directory (must not exist, or be empty).
        name: zoo name (default: the input names joined by ``+``).
        version: semantic version of the merged zoo.
        description: one-paragraph description (card prose).
        license: license id (default: the inputs' license if they agree, else ``other``).
        citation: BibTeX for the card.
        card: markdown prose for the dataset card.
        verify: check every input shard's checksum first.
        recipe: extra fields stored in the manifest's ``recipe`` (used by ``build_mix``).

    Returns:
        The manifest of the merged zoo.

    Raises:
        CorruptZooError: an input has no/invalid manifest, a newer format, or a corrupt shard.
        MergeConflictError: one model id with different content in two inputs.
    """
    if not zoos:
        raise ZooError("give at least one zoo to merge")
    version = check_version(version)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StorageError(f"{out} already exists; merge into a new (or empty) --out folder")
    roots = [Path(z) for z in zoos]
    plan = _plan(roots, verify)
    manifests = [inp.manifest for inp in plan.inputs]
    name = name or "+".join(dict.fromkeys(m.name for m in manifests))
    licenses = {m.license for m in manifests}
    lic = license or (licenses.pop() if len(licenses) == 1 else "other")
    tmp = staging_dir(out, "merge")
    try:
        writers = {
            cfg: ZooWriter(tmp / "data" / cfg, zoo_schema(None)) for cfg in plan.configs.values()
        }
        _stream_inputs(plan, writers)
        manifest = _finalize(
            tmp, plan, writers, name=name, version=version, description=description,
            license=lic, citation=citation, card=card, recipe=recipe,
        )  # fmt: skip
        commit_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _finalize(
    tmp: Path,
    plan: _Plan,
    writers: dict[str, ZooWriter],
    *,
    name: str,
    version: str,
    description: str,
    license: str,
    citation: str,
    card: str,
    recipe: dict[str, Any] | None,
) -> Manifest:
    files: list[FileEntry] = []
    models: dict[str, ModelEntry] = {}
    for (arch, src), cfg in sorted(plan.configs.items(), key=lambda kv: kv[1]):
        sub = writers[cfg].finalize(
            name=f"{name}/{cfg}",
            version=version,
            recipe={"kind": "config", "config": cfg, "of": name},
            architectures={arch: plan.architectures[arch]},
            sources={src: plan.sources[src]},
            toolkit_version=__version__,
            description=description,
            license=license,
        )
        shutil.rmtree(tmp / "data" / cfg / BUILD_DIR, ignore_errors=True)
        files += [f.model_copy(update={"path": f"data/{cfg}/{f.path}"}) for f in sub.files]
        for mid, m in sub.models.items():
            if mid in models:
                raise CorruptZooError(f"model {mid} was written twice while merging")
            models[mid] = m
    used_arch = {m.architecture for m in models.values()}
    used_src = {m.source for m in models.values()}
    members = [
        {
            "name": inp.manifest.name,
            "version": inp.manifest.version,
            "content_hash": inp.manifest.content_hash,
            "recipe": inp.manifest.recipe,
        }
        for inp in plan.inputs
    ]
    manifest = Manifest(
        name=name,
        version=version,
        description=description,
        license=license,
        recipe={
            "kind": "merge",
            "name": name,
            "version": version,
            "description": description,
            "license": license,
            "citation": citation,
            "card": card,
            **(recipe or {}),
            "members": members,
        },
        toolkit_version=__version__,
        torch_version=torch.__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        architectures={k: v for k, v in plan.architectures.items() if k in used_arch},
        sources={k: v for k, v in plan.sources.items() if k in used_src},
        files=sorted(files, key=lambda f: f.path),
        models=dict(sorted(models.items())),
        num_rows=sum(f.num_rows for f in files),
        content_hash=content_hash(models),
        split_hashes=split_hashes(models),
    )
    configs = zoo_configs(manifest)
    data_files: dict[str, dict[str, str]] = {}
    for c in configs:
        folder = "*" if c.architecture is None else c.name
        data_files[c.name] = {s: f"data/{folder}/{s}/data-g*.arrow" for s in c.rows}
    if len(configs) == 1:  # one pair: its folder name is the pair's, the config is `default`
        only = next(iter(plan.configs.values()))
        data_files[configs[0].name] = {
            s: f"data/{only}/{s}/data-g*.arrow" for s in configs[0].rows
        }
    atomic_write_bytes(
        tmp / "README.md",
        local_card(
            name=name, description=description, configs=configs, data_files=data_files
        ).encode(),
    )
    atomic_write_bytes(tmp / MANIFEST_NAME, manifest.model_dump_json(indent=1).encode())
    return manifest

