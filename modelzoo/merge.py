"""Merging zoos of different architectures and source datasets into one heterogeneous zoo.

A merged zoo keeps the zoo row schema with variable-length weights (``zoo_schema(None)``) and
one *config* per (architecture, source) pair, each written by a
:class:`~modelzoo.storage.writer.ZooWriter` into its own folder::

    zoo.json                            manifest of the whole merged zoo (written last)
    README.md                           YAML ``configs``: one per pair plus ``all`` (default)
    data/<config>/<split>/data-g*.arrow shards (one group per input zoo)
    data/<config>/zoo.json              the config on its own (a valid zoo, ``load_zoo`` reads it)

so ``datasets.load_dataset(path)`` gives every model and ``load_dataset(path, "cnn_s-digits")``
one pair. A *mix* recipe (``kind: mix`` + ``members``) builds several recipes and merges them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import modelzoo
from modelzoo.errors import CorruptZooError, RecipeError, StorageError, ZooError
from modelzoo.recipe import Recipe, load_recipe, make_recipe, read_yaml_mapping
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir, fsync_dir
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
from modelzoo.storage.schema import SPLITS, zoo_schema
from modelzoo.storage.writer import BUILD_DIR, GroupWriter, ZooWriter
from modelzoo.versioning import check_version

#: Name of the config holding every model of a heterogeneous zoo.
ALL_CONFIG = "all"
#: Name of the single config of a homogeneous zoo.
DEFAULT_CONFIG = "default"

_SAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


class MergeConflictError(ZooError):
    """Two input zoos disagree about a model (same id, different content)."""


# ---------------------------------------------------------------------------------------------
# configs: one per (architecture column value, source column value)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZooConfig:
    """A ``datasets`` config of a zoo: the rows of one (architecture, source) pair, or all rows.

    Attributes:
        name: config name (``<arch>-<source>``, ``all`` or ``default``).
        architecture: value of the ``architecture`` column, ``None`` for all rows.
        source: value of the ``source`` column, ``None`` for all rows.
        rows: checkpoints per split (splits without rows are absent).
        models: models per split.
    """

    name: str
    architecture: str | None
    source: str | None
    rows: dict[str, int] = field(default_factory=dict)
    models: dict[str, int] = field(default_factory=dict)

    def matches(self, architecture: str, source: str) -> bool:
        """Whether a row of this (architecture, source) belongs to the config."""
        return (self.architecture is None or self.architecture == architecture) and (
            self.source is None or self.source == source
        )


def safe_name(name: str) -> str:
    """``name`` reduced to characters safe in file names and config names."""
    return _SAFE.sub("_", name).strip("_") or "zoo"


def config_names(
    pairs: Iterable[tuple[str, str]], arch_names: dict[str, str]
) -> dict[tuple[str, str], str]:
    """Name the config of each (architecture key, source key) pair.

    The name is ``<registry name>-<source>`` (e.g. ``cnn_s-digits`` even when the column value
    is ``cnn_s@digits``); where that is ambiguous the architecture key is used instead.
    """
    pairs = sorted(set(pairs))
    base = {p: safe_name(f"{arch_names.get(p[0], p[0])}-{p[1]}") for p in pairs}
    counts: dict[str, int] = {}
    for b in base.values():
        counts[b] = counts.get(b, 0) + 1
    out = {p: (b if counts[b] == 1 else safe_name(f"{p[0]}-{p[1]}")) for p, b in base.items()}
    if len(set(out.values())) != len(out) or set(out.values()) & {ALL_CONFIG, DEFAULT_CONFIG}:
        digest = {p: hashlib.sha256(f"{p[0]}\t{p[1]}".encode()).hexdigest()[:6] for p in pairs}
        out = {p: f"{out[p]}-{digest[p]}" for p in pairs}
    return out


def zoo_configs(manifest: Manifest) -> list[ZooConfig]:
    """The configs of a zoo: one per (architecture, source) pair, then ``all``.

    A homogeneous zoo (one pair) has the single config ``default``.
    """
    rows: dict[tuple[str, str], dict[str, int]] = {}
    models: dict[tuple[str, str], dict[str, int]] = {}
    for m in manifest.models.values():
        key = (m.architecture, m.source)
        r = rows.setdefault(key, {})
        r[m.split] = r.get(m.split, 0) + m.num_checkpoints
        n = models.setdefault(key, {})
        n[m.split] = n.get(m.split, 0) + 1
    order = {s: i for i, s in enumerate(SPLITS)}

    def _sorted(d: dict[str, int]) -> dict[str, int]:
        return dict(sorted(d.items(), key=lambda kv: order.get(kv[0], len(order))))

    if len(rows) <= 1:
        key = next(iter(rows), (None, None))
        return [
            ZooConfig(DEFAULT_CONFIG, None, None, _sorted(rows.get(key, {})),
                      _sorted(models.get(key, {})))  # type: ignore[arg-type]
        ]  # fmt: skip
    arch_names = {k: a.name for k, a in manifest.architectures.items()}
    names = config_names(rows, arch_names)
    out = [
        ZooConfig(names[p], p[0], p[1], _sorted(rows[p]), _sorted(models[p]))
        for p in sorted(rows, key=lambda p: names[p])
    ]
    tot_r: dict[str, int] = {}
    tot_m: dict[str, int] = {}
    for c in out:
        for s, n in c.rows.items():
            tot_r[s] = tot_r.get(s, 0) + n
        for s, n in c.models.items():
            tot_m[s] = tot_m.get(s, 0) + n
    return [*out, ZooConfig(ALL_CONFIG, None, None, _sorted(tot_r), _sorted(tot_m))]


# ---------------------------------------------------------------------------------------------
# streaming the rows of a zoo
# ---------------------------------------------------------------------------------------------

_COLUMNS = tuple(zoo_schema(None).names)


def check_batch_schema(schema: pa.Schema, where: str) -> None:
    """Raise CorruptZooError unless ``schema`` is a zoo row schema."""
    if tuple(schema.names) != _COLUMNS:
        raise CorruptZooError(
            f"{where} does not have the zoo row schema (columns {schema.names}); it was written "
            "by another tool or a newer toolkit version"
        )
    w = schema.field("weights").type
    is_list = pa.types.is_list(w) or pa.types.is_fixed_size_list(w)
    if not is_list or w.value_type != pa.float32():
        raise CorruptZooError(f"{where}: weights column has type {w}, expected list<float32>")


def iter_zoo_batches(
    root: str | Path, manifest: Manifest, *, columns: Sequence[str] | None = None
) -> Iterator[tuple[FileEntry, pa.RecordBatch]]:
    """Stream the record batches of every shard of a zoo (memory-mapped, one batch at a time).

    Args:
        root: zoo directory.
        manifest: its manifest.
        columns: keep only these columns (e.g. everything but ``weights`` for statistics).

    Raises:
        CorruptZooError: a shard is missing, unreadable or has the wrong schema.
    """
    root = Path(root)
    for f in manifest.files:
        path = root / f.path
        try:
            source = pa.memory_map(str(path))
        except OSError as e:
            raise CorruptZooError(f"cannot open shard {f.path} of {root}: {e}") from None
        try:
            reader = pa.ipc.open_stream(source)
            check_batch_schema(reader.schema, f"shard {f.path} of {root}")
            for batch in reader:
                yield f, (batch.select(list(columns)) if columns is not None else batch)
        except (pa.ArrowInvalid, OSError) as e:
            raise CorruptZooError(f"cannot read shard {f.path} of {root}: {e}") from None
        finally:
            source.close()


# ---------------------------------------------------------------------------------------------
# merge planning
# ---------------------------------------------------------------------------------------------


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


def model_hashes_where(
    root: str | Path,
    manifest: Manifest,
    ids: Iterable[str],
    *,
    drop: Sequence[str] = (),
    replace: dict[str, dict[str, str]] | None = None,
) -> dict[str, str]:
    """Per-model content hashes of some models, computed from their rows (streamed).

    Like the manifest's per-model ``sha256`` but with columns in ``drop`` left out and column
    values mapped by ``replace`` (``{"architecture": {"cnn_s": "cnn_s@digits"}}``), to compare
    models across zoos that label them differently or put them in other splits.
    """
    from modelzoo.storage.writer import row_hash

    wanted = set(ids)
    replace = replace or {}
    rows: dict[str, list[tuple[int, str]]] = {}
    for _f, batch in iter_zoo_batches(root, manifest):
        mids = batch.column(batch.schema.get_field_index("model_id")).to_pylist()
        sel = [i for i, mid in enumerate(mids) if mid in wanted]
        if not sel:
            continue
        cols = [c for c in batch.schema.names if c != "weights" and c not in drop]
        meta = batch.select(cols).to_pylist()
        w = batch.column(batch.schema.get_field_index("weights"))
        for i in sel:
            row = meta[i]
            for col, mapping in replace.items():
                if col in row:
                    row[col] = mapping.get(row[col], row[col])
            vec = w[i].values.to_numpy(zero_copy_only=False)
            rows.setdefault(mids[i], []).append((row["epoch"], row_hash(row, vec)))
    return {
        mid: hashlib.sha256("".join(h for _, h in sorted(items)).encode()).hexdigest()
        for mid, items in rows.items()
    }


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


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


def staging_dir(out: Path, what: str) -> Path:
    """A fresh temp folder next to ``out`` (same file system, so it can be renamed onto it)."""
    tmp = out.parent / f".{out.name}.{what}-tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    ensure_dir(out.parent)
    return tmp


def commit_dir(tmp: Path, out: Path) -> None:
    """Move a fully written staging folder onto ``out`` (absent or an empty folder)."""
    try:
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except OSError as e:
        raise StorageError(f"cannot move the finished zoo into {out}: {e}") from None


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


def local_card(
    *, name: str, description: str, configs: list[ZooConfig], data_files: dict[str, dict]
) -> str:
    """README.md of a local zoo folder: YAML ``configs`` so ``load_dataset(dir, cfg)`` works."""
    front = {
        "configs": [
            {
                "config_name": c.name,
                **({"default": True} if c.name in (ALL_CONFIG, DEFAULT_CONFIG) else {}),
                "data_files": [{"split": s, "path": p} for s, p in data_files[c.name].items()],
            }
            for c in configs
        ],
        "tags": ["model-zoo", "weight-space-learning"],
    }
    body = [f"# {name}", ""]
    if description:
        body += [description, ""]
    body.append("Configs: " + ", ".join(f"`{c.name}`" for c in configs) + ".")
    body.append("")
    body.append("A merged model zoo built with the model-zoo toolkit. `zoo info .` summarises it.")
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + "\n".join(body) + "\n"


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
            toolkit_version=modelzoo.__version__,
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
        toolkit_version=modelzoo.__version__,
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


# ---------------------------------------------------------------------------------------------
# mix recipes: build several recipes and merge them
# ---------------------------------------------------------------------------------------------


class MixRecipe(BaseModel):
    """A heterogeneous zoo recipe (``kind: mix``): member recipes built then merged.

    ``members`` entries are recipe file names (relative to the mix file) or inline recipes.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["mix"] = "mix"
    name: str
    version: str = "1.0.0"
    description: str = ""
    license: str = "cc-by-4.0"
    citation: str = ""
    card: str = ""
    members: list[str | dict[str, Any]] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        try:
            return check_version(v)
        except ZooError as e:
            raise ValueError(str(e)) from None


def is_mix_file(path: str | Path) -> bool:
    """Whether ``path`` is a YAML mix recipe (``kind: mix``)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and raw.get("kind") == "mix"


def load_mix(path: str | Path) -> tuple[MixRecipe, list[Recipe]]:
    """Read a mix recipe and its member recipes.

    Raises:
        RecipeError: unreadable/invalid mix file or member recipe.
    """
    p = Path(path)
    raw = read_yaml_mapping(p, "mix recipe")
    try:
        mix = MixRecipe.model_validate(raw)
    except ValidationError as e:
        msgs = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or 'mix'}: {err['msg']}" for err in e.errors()
        )
        raise RecipeError(f"invalid mix recipe {p}: {msgs}") from None
    members = []
    for m in mix.members:
        if isinstance(m, str):
            member = p.parent / m
            if is_mix_file(member):
                raise RecipeError(f"mix member {m} is itself a mix; list its members instead")
            members.append(load_recipe(member))
        else:
            members.append(make_recipe(m))
    names = [r.name for r in members]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RecipeError(f"mix recipe {p} lists members with the same name: {dup}")
    return mix, members


def build_mix(
    *,
    mix: str | Path,
    out: str | Path,
    models: int | None = None,
    epochs: int | None = None,
    max_train: int | None = None,
    data_dir: str | Path | None = None,
    group_size: int = 64,
    trainer: str = "population",
    device: str = "cpu",
    progress: bool = False,
    threads: int | None = None,
) -> Manifest:
    """Build every member recipe of a mix file, then merge them into one zoo at ``out``.

    Members are built (resumably) under ``.<out>.members/`` next to ``out`` and removed once
    the merged zoo is complete; rerunning an interrupted build resumes the member builds.
    ``models``/``epochs``/``max_train`` override every member (for quick test builds).

    Returns:
        The manifest of the merged zoo.
    """
    from modelzoo.build import build_zoo

    mix_cfg, members = load_mix(mix)
    out = Path(out)
    key = {
        "mix": mix_cfg.model_dump(exclude={"description", "license", "citation", "card"}),
        "members": [r.build_key() for r in members],
        "overrides": {"models": models, "epochs": epochs, "max_train": max_train},
    }
    key_hash = "sha256:" + hashlib.sha256(
        json.dumps(key, sort_keys=True, default=str).encode()
    ).hexdigest()
    if (out / MANIFEST_NAME).exists():
        done = read_manifest(out)
        if done.recipe.get("mix_key") == key_hash:
            return done
        raise ZooError(f"{out} already holds a different zoo; choose another --out")
    work = out.parent / f".{out.name}.members"
    roots = []
    for rec in members:
        ckpts = None
        if epochs is not None and rec.checkpoint_epochs != "all":
            ckpts = [e for e in rec.checkpoint_epochs if e <= epochs] or [epochs]
        root = work / safe_name(rec.name)
        build_zoo(
            out=root, recipe=rec, models=models, epochs=epochs, max_train=max_train,
            checkpoint_epochs=ckpts, data_dir=data_dir, group_size=group_size, trainer=trainer,
            device=device, progress=progress, threads=threads,
        )  # fmt: skip
        roots.append(root)
    manifest = merge_zoos(
        zoos=roots, out=out, name=mix_cfg.name, version=mix_cfg.version,
        description=mix_cfg.description, license=mix_cfg.license, citation=mix_cfg.citation,
        card=mix_cfg.card, verify=False, recipe={"kind": "mix", "mix_key": key_hash},
    )  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return manifest
