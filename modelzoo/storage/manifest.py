"""The ``zoo.json`` manifest: what a zoo is, how it was made, and how to check it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelzoo.errors import CorruptZooError
from modelzoo.storage.layout import LayerSpec

#: Bumped when the on-disk format changes incompatibly.
FORMAT_VERSION = 1
MANIFEST_NAME = "zoo.json"


class ArchitectureEntry(BaseModel):
    """An architecture used in the zoo, with its constructor kwargs and layer layout."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    n_params: int
    layout: list[LayerSpec]


class SourceEntry(BaseModel):
    """A source dataset the zoo's models were trained on."""

    model_config = ConfigDict(extra="forbid")

    name: str
    fingerprint: str
    num_classes: int
    in_shape: tuple[int, ...]
    sizes: dict[str, int] = Field(default_factory=dict)


class FileEntry(BaseModel):
    """One Arrow shard with its checksum."""

    model_config = ConfigDict(extra="forbid")

    path: str
    split: str
    num_rows: int
    sha256: str


class ModelEntry(BaseModel):
    """One model: its split, status and the hash of its rows."""

    model_config = ConfigDict(extra="forbid")

    architecture: str
    source: str
    split: str
    status: str
    num_checkpoints: int
    sha256: str


class Manifest(BaseModel):
    """Contents of ``zoo.json``."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    name: str
    version: str = "1.0.0"
    description: str = ""
    license: str = "cc-by-4.0"
    recipe: dict[str, Any] = Field(default_factory=dict)
    toolkit_version: str
    torch_version: str
    created: str
    architectures: dict[str, ArchitectureEntry]
    sources: dict[str, SourceEntry]
    files: list[FileEntry]
    models: dict[str, ModelEntry]
    num_rows: int
    content_hash: str
    split_hashes: dict[str, str] = Field(default_factory=dict)

    @property
    def num_models(self) -> int:
        """Number of models (not checkpoints)."""
        return len(self.models)

    def split_counts(self) -> dict[str, dict[str, int]]:
        """Models and rows per split."""
        out: dict[str, dict[str, int]] = {}
        for m in self.models.values():
            d = out.setdefault(m.split, {"models": 0, "rows": 0})
            d["models"] += 1
            d["rows"] += m.num_checkpoints
        return out


def content_hash(models: dict[str, ModelEntry]) -> str:
    """Hash of a zoo's content: independent of shard layout and build order."""
    h = hashlib.sha256()
    for mid in sorted(models):
        h.update(f"{mid}\t{models[mid].split}\t{models[mid].sha256}\n".encode())
    return "sha256:" + h.hexdigest()


def split_hashes(models: dict[str, ModelEntry]) -> dict[str, str]:
    """One hash per split over its sorted model ids (pins split membership)."""
    per: dict[str, list[str]] = {}
    for mid, m in models.items():
        per.setdefault(m.split, []).append(mid)
    return {
        s: "sha256:" + hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
        for s, ids in sorted(per.items())
    }


def read_manifest(path: str | Path) -> Manifest:
    """Read and validate ``zoo.json`` from a zoo directory.

    Raises:
        CorruptZooError: missing or malformed manifest, or one written by a newer toolkit.
    """
    p = Path(path)
    mpath = p / MANIFEST_NAME if p.is_dir() or not p.suffix else p
    if not mpath.is_file():
        raise CorruptZooError(
            f"{p} is not a model zoo: no {MANIFEST_NAME} found (is the build finished? "
            "run `zoo build` again with the same --out to resume it)"
        )
    try:
        raw = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptZooError(f"{mpath} is not valid JSON: {e}") from None
    fv = raw.get("format_version") if isinstance(raw, dict) else None
    if not isinstance(fv, int):
        raise CorruptZooError(f"{mpath} has no integer format_version")
    if fv > FORMAT_VERSION:
        raise CorruptZooError(
            f"{mpath} uses zoo format {fv}, newer than this toolkit reads ({FORMAT_VERSION}); "
            "upgrade with `pip install -U modelzoo-toolkit`"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as e:
        raise CorruptZooError(f"{mpath} does not match the manifest schema:\n{e}") from None
