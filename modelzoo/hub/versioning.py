"""Zoo versions: semantic versions, content hashes, diffs, and the never-change-in-place rule.

A zoo's identity is its ``content_hash`` (over model ids, splits and per-model hashes, see
``modelzoo.storage.manifest.content_hash``); its ``version`` is the human-facing semantic
version. A *published* version never changes: publishing the same (version, content) again is
a no-op, anything else to the same version folder or Hub tag is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from modelzoo.errors import ZooError
from modelzoo.hub.stream import model_hashes_where
from modelzoo.storage.manifest import Manifest, read_manifest


class VersionConflictError(ZooError):
    """A published version would change in place."""


def parse_version(version: str) -> tuple[int, int, int]:
    """``"1.2.3"`` -> ``(1, 2, 3)``.

    Raises:
        ZooError: not a semantic MAJOR.MINOR.PATCH version.
    """
    parts = str(version).removeprefix("v").split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ZooError(f"version must be semantic MAJOR.MINOR.PATCH (e.g. 1.0.0), got {version!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def check_version(version: str) -> str:
    """Validate a semantic version and return it without a leading ``v``."""
    parse_version(version)
    return str(version).removeprefix("v")


def bump_version(version: str, part: Literal["major", "minor", "patch"] = "minor") -> str:
    """The next version: ``bump_version("1.2.3", "minor") == "1.3.0"``."""
    major, minor, patch = parse_version(version)
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    if part == "patch":
        return f"{major}.{minor}.{patch + 1}"
    raise ZooError(f"part must be major, minor or patch, not {part!r}")


def version_tag(version: str) -> str:
    """Hub tag of a version: ``1.0.0`` -> ``v1.0.0``."""
    return "v" + check_version(version)


def check_same_release(existing: Manifest, new: Manifest, *, where: str) -> bool:
    """Enforce "a published version never changes in place".

    Returns:
        True when ``where`` already holds exactly this release (publishing again is a no-op).

    Raises:
        VersionConflictError: ``where`` holds another version or other content.
    """
    if existing.content_hash == new.content_hash and existing.version == new.version:
        return True
    if existing.version == new.version:
        raise VersionConflictError(
            f"{where} already holds {existing.name} v{existing.version} with different content "
            f"({existing.content_hash[:19]}... != {new.content_hash[:19]}...); a published "
            "version never changes: bump the version (e.g. `zoo merge ... --version "
            f"{bump_version(new.version)}` or the recipe's `version:`) and publish it to a "
            "new folder or tag"
        )
    raise VersionConflictError(
        f"{where} already holds {existing.name} v{existing.version}; publish v{new.version} to "
        "its own folder or tag (published versions are never replaced)"
    )


# ---------------------------------------------------------------------------------------------
# diff
# ---------------------------------------------------------------------------------------------


class ZooRef(BaseModel):
    """Identity of one side of a diff."""

    name: str
    version: str
    content_hash: str
    num_models: int
    num_rows: int


class ZooDiff(BaseModel):
    """What changed between two versions of a zoo.

    Attributes:
        added: model ids only in the new zoo.
        removed: model ids only in the old zoo.
        changed: model ids in both whose checkpoints differ (weights or metrics).
        moved: model id -> (old split, new split).
        metadata: dotted field (``version``, ``recipe.epochs``, ``architectures.cnn_s.n_params``)
            -> (old value, new value).
        warnings: version-policy problems (content changed without a version bump, ...).
    """

    old: ZooRef
    new: ZooRef
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    moved: dict[str, tuple[str, str]] = Field(default_factory=dict)
    metadata: dict[str, tuple[Any, Any]] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    @property
    def same_content(self) -> bool:
        """Whether both zoos hold the same models, splits and weights."""
        return self.old.content_hash == self.new.content_hash

    @property
    def identical(self) -> bool:
        """No change at all (content and metadata)."""
        return self.same_content and not self.metadata

    def summary(self, limit: int = 20) -> str:
        """Human-readable report."""
        o, n = self.old, self.new
        lines = [
            f"old: {o.name} v{o.version}  {o.num_models} models, {o.num_rows} checkpoints  "
            f"{o.content_hash}",
            f"new: {n.name} v{n.version}  {n.num_models} models, {n.num_rows} checkpoints  "
            f"{n.content_hash}",
        ]
        if self.identical:
            lines.append("identical")
            return "\n".join(lines)
        if self.same_content:
            lines.append("content: unchanged (same models, splits and weights)")

        def _ids(title: str, ids: list[str]) -> None:
            if not ids:
                return
            lines.append(f"{title}: {len(ids)}")
            lines.extend(f"  {i}" for i in ids[:limit])
            if len(ids) > limit:
                lines.append(f"  ... and {len(ids) - limit} more")

        _ids("models added", self.added)
        _ids("models removed", self.removed)
        _ids("models changed", self.changed)
        if self.moved:
            lines.append(f"split changes: {len(self.moved)}")
            for mid, (a, b) in list(self.moved.items())[:limit]:
                lines.append(f"  {mid}: {a} -> {b}")
            if len(self.moved) > limit:
                lines.append(f"  ... and {len(self.moved) - limit} more")
        if self.metadata:
            lines.append(f"metadata changes: {len(self.metadata)}")
            for k, (a, b) in self.metadata.items():
                lines.append(f"  {k}: {_short(a)} -> {_short(b)}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(lines)


def _short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


_MISSING = "<absent>"


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _metadata(m: Manifest) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key in ("format_version", "name", "version", "description", "license",
                "toolkit_version", "torch_version"):  # fmt: skip
        flat[key] = getattr(m, key)
    _flatten("recipe", m.recipe, flat)
    for k, a in m.architectures.items():
        flat[f"architectures.{k}.name"] = a.name
        flat[f"architectures.{k}.n_params"] = a.n_params
        _flatten(f"architectures.{k}.kwargs", a.kwargs, flat)
        flat[f"architectures.{k}.layout"] = [(s.name, s.shape) for s in a.layout]
    for k, s in m.sources.items():
        flat[f"sources.{k}.fingerprint"] = s.fingerprint
        flat[f"sources.{k}.in_shape"] = tuple(s.in_shape)
        flat[f"sources.{k}.num_classes"] = s.num_classes
        _flatten(f"sources.{k}.sizes", s.sizes, flat)
    return flat


def diff_zoos(*, old: str | Path, new: str | Path, deep: bool = True) -> ZooDiff:
    """Compare two zoos (local zoo folders or published folders with a ``zoo.json``).

    Args:
        old: the earlier zoo.
        new: the later zoo.
        deep: for models whose split changed, read their rows to tell whether their weights
            changed too (needs the Arrow shards; otherwise such models count as changed).

    Returns:
        A :class:`ZooDiff` (``.summary()`` renders it).
    """
    a, b = read_manifest(old), read_manifest(new)
    ref = lambda m: ZooRef(  # noqa: E731
        name=m.name, version=m.version, content_hash=m.content_hash,
        num_models=m.num_models, num_rows=m.num_rows,
    )  # fmt: skip
    d = ZooDiff(old=ref(a), new=ref(b))
    d.added = sorted(set(b.models) - set(a.models))
    d.removed = sorted(set(a.models) - set(b.models))
    both = sorted(set(a.models) & set(b.models))
    moved = [m for m in both if a.models[m].split != b.models[m].split]
    d.moved = {m: (a.models[m].split, b.models[m].split) for m in moved}
    changed = [
        m for m in both if a.models[m].sha256 != b.models[m].sha256 and m not in d.moved
    ]
    if moved:
        ha = hb = None
        if deep and all((Path(old) / f.path).is_file() for f in a.files) and all(
            (Path(new) / f.path).is_file() for f in b.files
        ):
            ha = model_hashes_where(old, a, moved, drop=("split",))
            hb = model_hashes_where(new, b, moved, drop=("split",))
        changed += [m for m in moved if ha is None or hb is None or ha.get(m) != hb.get(m)]
    d.changed = sorted(changed)
    ma, mb = _metadata(a), _metadata(b)
    for k in sorted(set(ma) | set(mb)):
        va, vb = ma.get(k, _MISSING), mb.get(k, _MISSING)
        if va != vb:
            d.metadata[k] = (va, vb)
    if not d.same_content:
        if a.version == b.version:
            d.warnings.append(
                f"content changed but the version is still {b.version}: bump it before "
                "publishing (a published version never changes)"
            )
        elif _safe_version(b.version) < _safe_version(a.version):
            d.warnings.append(f"the new version {b.version} is lower than the old {a.version}")
    return d


def _safe_version(v: str) -> tuple[int, int, int]:
    try:
        return parse_version(v)
    except ZooError:
        return (0, 0, 0)
