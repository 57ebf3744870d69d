"""Publishing a zoo as a Hugging Face dataset repository (local folder and/or the Hub).

The repository layout is the one the Hub and ``datasets`` read without a loading script::

    README.md          dataset card: YAML front matter (configs + data_files per split, license,
                       tags, task_categories, size_categories, pretty_name), prose, statistics
    accuracy.png       test accuracy vs epoch, linked from the card
    zoo.json           the zoo's manifest (version, content hash, layouts, per-model hashes)
    data/train-00000-of-00001.parquet ...            homogeneous zoo (config ``default``)
    data/<config>/train-00000-of-00002.parquet ...   heterogeneous zoo (+ config ``all``)

so ``datasets.load_dataset(folder)`` / ``load_dataset(folder, "<config>")`` work offline, and
``load_dataset("user/name", revision="v1.0.0")`` is the read path once uploaded. A published
version never changes: publishing again the same version and content is a no-op, anything else
into the same folder or tag is refused (:class:`~modelzoo.hub.versioning.VersionConflictError`).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel

from modelzoo.errors import StorageError, ZooError
from modelzoo.hub.cards import PLOT_NAME, plot_accuracy, render_card, zoo_stats
from modelzoo.hub.configs import ZooConfig, zoo_configs
from modelzoo.hub.staging import commit_dir, staging_dir
from modelzoo.hub.stream import iter_zoo_batches
from modelzoo.hub.upload import (
    check_reachable,
    check_repo_id,
    default_endpoint,
    hub_api,
    hub_error,
    transport_errors,
    upload_folder,
)
from modelzoo.hub.versioning import check_same_release, version_tag
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir
from modelzoo.storage.manifest import MANIFEST_NAME, Manifest, read_manifest
from modelzoo.storage.reader import verify_zoo

#: Default maximum Parquet shard size (the Hub's convention is <= 500 MB per file).
DEFAULT_MAX_SHARD_SIZE = 500 * 2**20
#: Target Parquet row-group size (keeps the dataset viewer and streaming responsive).
ROW_GROUP_BYTES = 64 * 2**20
_ROW_OVERHEAD = 256  # bytes of metadata columns per row, for shard sizing


class PublishResult(BaseModel):
    """What ``publish_zoo`` did.

    Attributes:
        folder: the local repository folder (``None`` when only uploaded).
        files: repository files, relative paths.
        unchanged: the same version and content was already published there (no-op).
        repo_id: Hub dataset repository, when uploaded.
        revision: Hub tag of this version.
        commit: commit id of the upload.
        url: the dataset's page.
    """

    folder: Path | None = None
    files: list[str] = []
    unchanged: bool = False
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    url: str | None = None


# ---------------------------------------------------------------------------------------------
# the repository folder
# ---------------------------------------------------------------------------------------------


class _ShardWriter:
    """Writes one (config, split) as ``<prefix><split>-0000i-of-0000n.parquet`` shards."""

    def __init__(
        self, root: Path, prefix: str, split: str, rows: int, row_bytes: int, max_bytes: int
    ) -> None:
        self.root, self.prefix, self.split = root, prefix, split
        per_shard = max(1, max_bytes // row_bytes)
        self.n_shards = max(1, math.ceil(rows / per_shard))
        self.per_shard = math.ceil(rows / self.n_shards) if rows else 1
        self.row_group = max(1, min(self.per_shard, ROW_GROUP_BYTES // row_bytes))
        self.index = 0
        self.in_shard = 0
        self.writer: pq.ParquetWriter | None = None
        self.files: list[str] = []

    def _open(self, schema: pa.Schema) -> pq.ParquetWriter:
        rel = f"{self.prefix}{self.split}-{self.index:05d}-of-{self.n_shards:05d}.parquet"
        path = self.root / rel
        ensure_dir(path.parent)
        self.files.append(rel)
        try:
            return pq.ParquetWriter(str(path), schema, compression="zstd")
        except OSError as e:
            raise StorageError(f"cannot write {path}: {e}") from None

    def write(self, table: pa.Table) -> None:
        start = 0
        while start < len(table):
            if self.writer is None:
                self.writer = self._open(table.schema)
            take = min(len(table) - start, self.per_shard - self.in_shard)
            if self.index == self.n_shards - 1:
                take = len(table) - start  # the last shard takes the rest
            self.writer.write_table(table.slice(start, take), row_group_size=self.row_group)
            self.in_shard += take
            start += take
            if self.in_shard >= self.per_shard and self.index < self.n_shards - 1:
                self.writer.close()
                self.writer = None
                self.index += 1
                self.in_shard = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.index != self.n_shards - 1 or not self.files:
            raise StorageError(
                f"wrote {len(self.files)} of {self.n_shards} shards for split {self.split}: "
                "the zoo's row counts do not match zoo.json"
            )


def _layout(manifest: Manifest) -> tuple[list[ZooConfig], dict[str, str]]:
    """Configs and each data config's folder prefix under the repository root."""
    configs = zoo_configs(manifest)
    if len(configs) == 1:
        return configs, {configs[0].name: "data/"}
    return configs, {c.name: f"data/{c.name}/" for c in configs if c.architecture is not None}


def data_files_of(configs: list[ZooConfig], prefixes: dict[str, str]) -> dict[str, dict]:
    """``data_files`` globs per config and split (splits without rows are left out)."""
    out: dict[str, dict[str, str]] = {}
    for c in configs:
        prefix = prefixes.get(c.name, "data/*/")
        out[c.name] = {s: f"{prefix}{s}-*.parquet" for s in c.rows}
    return out


def write_hub_folder(
    *,
    zoo: str | Path,
    folder: str | Path,
    manifest: Manifest | None = None,
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    repo_id: str | None = None,
    revision: str | None = None,
) -> list[str]:
    """Write the Hub repository layout of ``zoo`` into the (new, empty) ``folder``.

    Rows are streamed batch by batch into Parquet shards; the card and its plot are rendered
    from statistics measured on the zoo.

    Returns:
        The repository files written, relative to ``folder``.
    """
    root = Path(zoo)
    manifest = manifest or read_manifest(root)
    folder = ensure_dir(Path(folder))
    configs, prefixes = _layout(manifest)
    data_cfgs = [c for c in configs if c.name in prefixes]
    writers: dict[tuple[str, str], _ShardWriter] = {}
    for c in data_cfgs:
        if c.architecture is not None:
            n_params = manifest.architectures[c.architecture].n_params
        else:
            n_params = max((a.n_params for a in manifest.architectures.values()), default=0)
        row_bytes = 4 * n_params + _ROW_OVERHEAD
        for split, rows in c.rows.items():
            writers[(c.name, split)] = _ShardWriter(
                folder, prefixes[c.name], split, rows, row_bytes, max_shard_size
            )
    homogeneous = len(data_cfgs) == 1 and data_cfgs[0].architecture is None
    try:
        for _f, batch in iter_zoo_batches(root, manifest):
            table = pa.Table.from_batches([batch])
            for c in data_cfgs:
                part = table
                if not homogeneous:
                    mask = pc.and_(
                        pc.equal(table.column("architecture"), c.architecture),
                        pc.equal(table.column("source"), c.source),
                    )
                    part = table.filter(mask)
                if not len(part):
                    continue
                for split in pc.unique(part.column("split")).to_pylist():
                    w = writers.get((c.name, split))
                    if w is None:
                        raise StorageError(f"rows of split {split!r} not listed in zoo.json")
                    w.write(part.filter(pc.equal(part.column("split"), split)))
        for w in writers.values():
            w.close()
    finally:
        for w in writers.values():
            if w.writer is not None:
                w.writer.close()
    files = sorted(f for w in writers.values() for f in w.files)
    stats = zoo_stats(root, manifest)
    plot_accuracy(stats, folder / PLOT_NAME, title=f"{manifest.name} v{manifest.version}")
    card = render_card(
        manifest=manifest, stats=stats, configs=configs,
        data_files=data_files_of(configs, prefixes), plot=PLOT_NAME, repo_id=repo_id,
        revision=revision,
    )  # fmt: skip
    atomic_write_bytes(folder / "README.md", card.encode("utf-8"))
    atomic_write_bytes(folder / MANIFEST_NAME, (root / MANIFEST_NAME).read_bytes())  # a copy
    return sorted([*files, "README.md", PLOT_NAME, MANIFEST_NAME])


# ---------------------------------------------------------------------------------------------
# the Hub
# ---------------------------------------------------------------------------------------------


def _published_manifest(api: Any, repo_id: str, tag: str, endpoint: str) -> Manifest | None:
    """The zoo.json of an existing tag, or None when the tag does not exist."""
    import json

    from huggingface_hub import hf_hub_download

    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    if tag not in {t.name for t in refs.tags}:
        return None
    path = hf_hub_download(
        repo_id, MANIFEST_NAME, repo_type="dataset", revision=tag, endpoint=endpoint,
        token=api.token,
    )  # fmt: skip
    return Manifest.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))


def _upload(
    *,
    folder: Path,
    manifest: Manifest,
    repo_id: str,
    tag: str,
    private: bool,
    token: str | None,
    endpoint: str,
    timeout: float,
) -> PublishResult:
    check_reachable(endpoint, timeout)
    api = hub_api(endpoint, token)
    url = f"{endpoint}/datasets/{repo_id}"
    try:
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
        existing = _published_manifest(api, repo_id, tag, endpoint)
    except transport_errors() as e:
        raise hub_error(endpoint, e) from None
    if existing is not None:
        check_same_release(existing, manifest, where=f"{repo_id}@{tag}")
        return PublishResult(repo_id=repo_id, revision=tag, unchanged=True, url=url)
    commit = upload_folder(
        folder, repo_id=repo_id, api=api, endpoint=endpoint, private=private,
        commit_message=f"Publish {manifest.name} v{manifest.version}",
        commit_description=f"content hash {manifest.content_hash}",
        delete_patterns=["data/**", PLOT_NAME], tag=tag,
        tag_message=f"{manifest.name} v{manifest.version} ({manifest.content_hash})",
    )  # fmt: skip
    return PublishResult(repo_id=repo_id, revision=tag, commit=commit, url=url)


def publish_zoo(
    *,
    zoo: str | Path,
    out: str | Path | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    verify: bool = True,
    timeout: float = 10.0,
) -> PublishResult:
    """Publish a zoo as a Hugging Face dataset: a local repository folder and/or the Hub.

    Args:
        zoo: the zoo directory.
        out: write the repository here (a new or empty folder, or one holding this very
            release, which is then left as is). Written to a temp folder and renamed at the end.
        repo_id: also upload to this Hub dataset repository (``user/name``), created if needed,
            and tag the commit ``revision``. Users then read it with
            ``load_dataset("user/name", revision="v1.0.0")``.
        revision: the Hub tag of this version (default ``v<version>``).
        private: create the Hub repository as private.
        token: Hub token (default: the logged-in token / ``HF_TOKEN``).
        endpoint: Hub URL (default ``HF_ENDPOINT`` or https://huggingface.co).
        max_shard_size: maximum bytes per Parquet shard.
        verify: check the zoo's shard checksums first.
        timeout: seconds to wait for the Hub to answer the first request.

    Raises:
        CorruptZooError: the zoo is missing its manifest, has a newer format or a corrupt shard.
        VersionConflictError: ``out`` or the tag already holds another version or content.
        PublishError: the Hub cannot be reached or refused the upload (nothing is left behind).
    """
    if out is None and repo_id is None:
        raise ZooError("give --out DIR (a local repository folder) and/or --repo-id user/name")
    root = Path(zoo)
    manifest = verify_zoo(root) if verify else read_manifest(root)
    tag = revision or version_tag(manifest.version)
    endpoint = (endpoint or default_endpoint()).rstrip("/")
    if repo_id is not None:
        check_repo_id(repo_id)
        check_reachable(endpoint, timeout)  # fail fast, before writing anything
    result = PublishResult()
    if out is not None:
        folder = Path(out)
        existing = folder / MANIFEST_NAME
        if existing.is_file():
            same = check_same_release(read_manifest(folder), manifest, where=str(folder))
            files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
            result = PublishResult(folder=folder, files=files, unchanged=same)
        elif folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise StorageError(
                f"{folder} exists and is not a published zoo; choose a new or empty --out"
            )
        else:
            tmp = staging_dir(folder, "publish")
            try:
                files = write_hub_folder(
                    zoo=root, folder=tmp, manifest=manifest, max_shard_size=max_shard_size,
                    repo_id=repo_id, revision=tag,
                )  # fmt: skip
                commit_dir(tmp, folder)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            result = PublishResult(folder=folder, files=files)
    if repo_id is None:
        return result
    if result.folder is not None:
        hub = _upload(folder=result.folder, manifest=manifest, repo_id=repo_id, tag=tag,
                      private=private, token=token, endpoint=endpoint, timeout=timeout)  # fmt: skip
    else:
        with tempfile.TemporaryDirectory(prefix="zoo-publish-") as staged:
            files = write_hub_folder(
                zoo=root, folder=staged, manifest=manifest, max_shard_size=max_shard_size,
                repo_id=repo_id, revision=tag,
            )  # fmt: skip
            hub = _upload(
                folder=Path(staged), manifest=manifest, repo_id=repo_id, tag=tag,
                private=private, token=token, endpoint=endpoint, timeout=timeout,
            )  # fmt: skip
            result = PublishResult(files=files)
    return result.model_copy(
        update={"repo_id": hub.repo_id, "revision": hub.revision, "commit": hub.commit,
                "url": hub.url, "unchanged": hub.unchanged}  # fmt: skip
    )
