"""Configs of a zoo: one ``datasets`` config per (architecture, source) pair, plus ``all``.

A homogeneous zoo has the single config ``default``; merge, publish and the cards name
configs and their folders with these helpers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from modelzoo.storage.manifest import Manifest
from modelzoo.storage.schema import SPLITS

#: Name of the config holding every model of a heterogeneous zoo.
ALL_CONFIG = "all"
#: Name of the single config of a homogeneous zoo.
DEFAULT_CONFIG = "default"

_SAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


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

