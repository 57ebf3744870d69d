"""Versioned result files of ``bench run`` (one JSON file per method x zoo x task).

Layout: ``<out>/<method>/<zoo-name>-v<zoo-version>/<task>.json``. The schema is the pydantic
model :class:`TaskResult`; its JSON Schema is published as ``benchmarks/results.schema.json``
(regenerate with ``bench schema --out benchmarks/results.schema.json`` after changing it).

Schema versions:

* 1: the first draft layout (never released by a tagged version): one seed, test scores only,
  ``{"schema_version": 1, "task": str, "zoo": "name@version", "zoo_hash": str,
  "method": str, "scores": {metric: float}, "main_score": float, "seed": int,
  "toolkit_version": str, "timestamp": str}``. Migrated on load.
* 2: several seeds with mean / std, scores per split, task / zoo / method metadata,
  curves, git hash.
* 3: as 2, plus an optional 95% bootstrap confidence interval ``ci`` on each
  :class:`ScoreStat` and on :class:`MainScore` (see :class:`ConfidenceInterval`). Additive:
  a v2 file migrates by changing only its version (its scores have no ``ci``).
* 4 (current): as 3, plus ``zoo.verified``: whether the zoo's shards were checked against
  the checksums of its ``zoo.json`` before scoring (``bench run --no-verify``: false). An
  unverified result cannot claim its pin (``matches_pin`` true needs ``verified`` not false)
  and is refused by ``bench submit``. A v3 file migrates with ``verified`` null (not
  recorded: made before shards were verified) and is otherwise unchanged.

A file with a newer ``schema_version`` than this toolkit knows, or no version at all, fails
with a :class:`~benchmarks.errors.ResultSchemaError` saying what to do.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import statistics
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from benchmarks.errors import ResultSchemaError, UnverifiedResultError
from modelzoo.storage.atomic import atomic_write_bytes, atomic_write_with, ensure_dir

SCHEMA_VERSION = 4
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ConfidenceInterval(BaseModel):
    """A percentile bootstrap interval of a seed-mean score (see :mod:`benchmarks.scoring`).

    Attributes:
        low: lower bound; ``None`` when the interval is undefined (see ``reason``).
        high: upper bound; ``None`` when undefined.
        level: coverage, e.g. 0.95.
        unit: what was resampled with replacement: ``"model"`` (property tasks: test-split
            models, each bringing all its checkpoints), ``"sample"`` (seeds, then the sampled
            weight vectors of each drawn seed), ``"sample x model"`` (samples as for
            ``"sample"`` and the reference test models at once).
        n_units: number of units resampled (samples: the fewest of one seed).
        n_resamples: bootstrap resamples.
        seed: seed of the resampling generator (the same seed gives the same interval).
        reason: why the interval is undefined (e.g. fewer than 2 units, constant target).
    """

    model_config = ConfigDict(extra="forbid")

    low: float | None
    high: float | None
    level: float = Field(0.95, gt=0, lt=1)
    unit: str = "model"
    n_units: int = Field(ge=0)
    n_resamples: int = Field(ge=1)
    seed: int = 0
    reason: str | None = None

    @property
    def defined(self) -> bool:
        """Whether both bounds exist."""
        return self.low is not None and self.high is not None

    def __str__(self) -> str:
        return f"[{self.low:.3f}, {self.high:.3f}]" if self.defined else "[n/a]"


class ScoreStat(BaseModel):
    """A score over seeds: mean, (population) standard deviation and the per-seed values,
    plus a bootstrap confidence interval of the mean (``None`` when not computed, e.g. in
    files of schema version < 3)."""

    model_config = ConfigDict(extra="forbid")

    mean: float
    std: float
    values: list[float] = Field(min_length=1)
    ci: ConfidenceInterval | None = None

    @classmethod
    def of(
        cls, values: Sequence[float], *, ci: ConfidenceInterval | None = None
    ) -> ScoreStat:
        """Summarise per-seed values (and attach an interval, if given)."""
        vals = [float(v) for v in values]
        return cls(mean=statistics.fmean(vals), std=statistics.pstdev(vals), values=vals,
                   ci=ci)

    def __str__(self) -> str:
        text = f"{self.mean:.3f} ± {self.std:.3f}"
        return f"{text} {self.ci}" if self.ci is not None else text


class TaskInfo(BaseModel):
    """The task a result is for (a copy of the declaration's key fields)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = 1
    type: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$",
                      description="Task type: regression, classification, initialization, "
                                  "generation, or one a plugin registers.")
    target: str
    main_score: str
    description: str = ""


class ZooInfo(BaseModel):
    """The zoo actually scored, and whether it is the one the task is pinned to.

    Attributes:
        name: zoo name (from its manifest).
        version: zoo version.
        content_hash: the manifest's content hash.
        matches_pin: name, version and content hash are those the task is pinned to, and
            the shards were verified (never true when ``verified`` is false).
        verified: the shards were checked against the manifest's checksums before scoring;
            ``None`` in files of schema version < 4 (not recorded).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    content_hash: str
    matches_pin: bool = True
    verified: bool | None = Field(
        None, description="Whether the zoo's shards were checked against the checksums in "
                          "its zoo.json before scoring (false: bench run --no-verify; null: "
                          "not recorded, schema version < 4).")

    @model_validator(mode="after")
    def _pin_needs_verified_shards(self) -> ZooInfo:
        if self.matches_pin and self.verified is False:
            raise ValueError("matches_pin cannot be true for a result whose zoo shards were "
                             "not verified (verified: false)")
        return self

    @property
    def label(self) -> str:
        """``name-vVERSION`` (path-safe)."""
        return _SAFE.sub("_", f"{self.name}-v{self.version}")


class MethodInfo(BaseModel):
    """The method scored: its name and its ``meta()``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    meta: dict[str, Any] = Field(default_factory=dict)


class MainScore(BaseModel):
    """The ranking score: one metric on one split, over seeds."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    split: str
    mean: float
    std: float
    ci: ConfidenceInterval | None = None


class TaskResult(BaseModel):
    """One method's scores on one task and zoo (schema version 4).

    Attributes:
        schema_version: version of this schema.
        task: task metadata.
        zoo: zoo name, version, content hash, and whether it matched the pin and was
            verified.
        method: method name and metadata.
        scores: ``{split: {metric: ScoreStat}}`` (property tasks: validation and test;
            initialization / generation: test), each with its bootstrap interval.
        main_score: the task's main metric on its scoring split (with its interval).
        curves: per-epoch scores (initialization: ``"test/accuracy"``, epoch 0 = before
            fine-tuning), each point a ScoreStat over seeds.
        seeds: seeds the scores are over.
        toolkit_version: ``modelzoo.__version__``.
        git_hash: commit of the toolkit checkout, if it is one.
        timestamp: when the evaluation finished (UTC).
        evaluation_time_s: wall time of the evaluation.
        details: facts of the run per seed (``{"per_seed": [...]}``: chosen head and its
            parameters, source dataset and fingerprint, target architecture...).
    """

    model_config = ConfigDict(extra="forbid", title="TaskResult")

    schema_version: Literal[4] = SCHEMA_VERSION
    task: TaskInfo
    zoo: ZooInfo
    method: MethodInfo
    scores: dict[str, dict[str, ScoreStat]]
    main_score: MainScore
    curves: dict[str, list[ScoreStat]] = Field(default_factory=dict)
    seeds: list[int] = Field(min_length=1)
    toolkit_version: str
    git_hash: str | None = None
    timestamp: _dt.datetime
    evaluation_time_s: float = 0.0
    details: dict[str, Any] = Field(default_factory=dict)

    def relative_path(self) -> Path:
        """``<method>/<zoo-name>-v<version>/<task>.json``."""
        return Path(self.method.name) / self.zoo.label / f"{self.task.name}.json"

    def save(self, root: str | Path) -> Path:
        """Write atomically under ``root`` and return the file's path."""
        path = Path(root) / self.relative_path()
        ensure_dir(path.parent)
        atomic_write_bytes(path, (self.model_dump_json(indent=2) + "\n").encode())
        return path


def _migrate_v1(d: dict[str, Any]) -> dict[str, Any]:
    """v1 (single seed, test scores, flat fields) -> v2."""
    zoo_name, _, zoo_version = str(d["zoo"]).partition("@")
    scores = {m: ScoreStat.of([v]).model_dump() for m, v in d["scores"].items()}
    main = next((m for m, v in d["scores"].items() if v == d["main_score"]), "main")
    return {
        "schema_version": 2,
        "task": {"name": d["task"], "type": d.get("task_type", "regression"),
                 "target": d.get("target", ""), "main_score": main},
        "zoo": {"name": zoo_name, "version": zoo_version or "unknown",
                "content_hash": d.get("zoo_hash", "")},
        "method": {"name": d["method"], "meta": {}},
        "scores": {"test": scores},
        "main_score": {"metric": main, "split": "test", "mean": float(d["main_score"]),
                       "std": 0.0},
        "seeds": [int(d.get("seed", 0))],
        "toolkit_version": d.get("toolkit_version", "unknown"),
        "timestamp": d["timestamp"],
    }


def _migrate_v2(d: dict[str, Any]) -> dict[str, Any]:
    """v2 -> v3: the intervals are new optional fields, so only the version changes (a v2
    file has no per-model predictions to compute them from; re-run to get them)."""
    return {**d, "schema_version": 3}


def _migrate_v3(d: dict[str, Any]) -> dict[str, Any]:
    """v3 -> v4: ``zoo.verified`` is new; a v3 file was made before shards were verified, so
    it is recorded as unknown (null), never as verified."""
    zoo = dict(d["zoo"])
    zoo.setdefault("verified", None)
    return {**d, "zoo": zoo, "schema_version": 4}


#: ``MIGRATIONS[v]`` turns a version-``v`` dict into a version ``v + 1`` dict.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _migrate_v1, 2: _migrate_v2, 3: _migrate_v3}


def require_verified(results: Iterable[TaskResult]) -> None:
    """Refuse results whose zoo shards were not verified when they were made.

    Raises:
        UnverifiedResultError: a result has ``zoo.verified`` false (``bench run
            --no-verify``) or null (a file of schema version < 4).
    """
    bad = [r for r in results if r.zoo.verified is not True]
    if bad:
        how = "was made with --no-verify" if bad[0].zoo.verified is False else \
            "predates shard verification (results schema < 4)"
        raise UnverifiedResultError(
            f"result {bad[0].relative_path()} {how}: its zoo's shards were not checked "
            f"against zoo.json, so it cannot stand for the pinned zoo ({len(bad)} such "
            "result(s)). Re-run `bench run` without --no-verify, with the same --out.")


def parse_result(data: Any, *, source: str = "<data>") -> TaskResult:
    """Validate a result dict of any known schema version, migrating old ones.

    Raises:
        ResultSchemaError: not a result, unknown / newer version, or invalid content.
    """
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ResultSchemaError(f"{source} is not a bench result file (no schema_version)")
    version = data["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ResultSchemaError(f"{source}: schema_version must be a positive integer")
    if version > SCHEMA_VERSION:
        raise ResultSchemaError(
            f"{source} uses results schema version {version}, newer than this toolkit reads "
            f"({SCHEMA_VERSION}); upgrade with `pip install -U modelzoo-toolkit`"
        )
    try:
        while version < SCHEMA_VERSION:
            data = MIGRATIONS[version](data)
            version = data["schema_version"]
    except (KeyError, TypeError, ValueError) as e:
        raise ResultSchemaError(
            f"{source}: cannot migrate results schema version {version} to {SCHEMA_VERSION}: "
            f"missing or invalid field {e}; re-run `bench run` to regenerate it"
        ) from None
    try:
        return TaskResult.model_validate(data)
    except ValidationError as e:
        raise ResultSchemaError(
            f"{source} does not match results schema version {SCHEMA_VERSION}:\n{e}"
        ) from None


def load_result(path: str | Path) -> TaskResult:
    """Read one result file (old schema versions are migrated).

    Raises:
        ResultSchemaError: unreadable, not JSON, or not a valid result.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultSchemaError(f"cannot read result file {p}: {e}") from None
    return parse_result(data, source=str(p))


def load_results(root: str | Path) -> list[TaskResult]:
    """All result files under ``root`` (``<method>/<zoo>/<task>.json``), sorted by path.

    Raises:
        ResultSchemaError: ``root`` has no result files, or one of them is invalid.
    """
    r = Path(root)
    files = sorted(r.glob("*/*/*.json")) if r.is_dir() else []
    if not files:
        raise ResultSchemaError(
            f"no result files under {r} (expected <method>/<zoo>/<task>.json; "
            "run `bench run --out` first)"
        )
    return [load_result(f) for f in files]


#: Folder (next to a method x zoo's result files) of per-item predictions.
PREDICTIONS_DIR = "predictions"


def predictions_path(result: TaskResult, root: str | Path) -> Path:
    """``<root>/<method>/<zoo>/predictions/<task>.parquet``: per-item outputs of a result.

    Written by ``bench run --save-predictions`` (:func:`write_predictions`), read by
    ``bench submit``. ``load_results`` does not see these files (they are not ``*.json``).
    """
    rel = result.relative_path()
    return Path(root) / rel.parent / PREDICTIONS_DIR / f"{result.task.name}.parquet"


def write_predictions(
    result: TaskResult, root: str | Path, items: Sequence[dict[str, Any]]
) -> Path:
    """Write per-seed, per-item outputs of ``result`` as Parquet (one row per seed x item).

    ``items`` holds one dict per seed, as collected by the runner: ``seed`` plus either
    ``model_id`` / ``epoch`` / ``prediction`` lists (property tasks: the test checkpoints) or
    ``weights`` ``[n, P]`` with per-sample score lists (``curve`` for initialization;
    ``zero_shot_accuracy`` / ``percentile`` / ``novelty`` / ``novel`` for generation).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols: dict[str, list[Any]] = {}
    for it in items:
        n = len(it["prediction"]) if "prediction" in it else len(it["weights"])
        cols.setdefault("seed", []).extend([int(it["seed"])] * n)
        if "weights" in it:
            cols.setdefault("sample", []).extend(range(n))
        for key, values in it.items():
            if key == "seed":
                continue
            if key == "weights":
                values = list(np.asarray(values, dtype=np.float32))  # noqa: PLW2901
            cols.setdefault(key, []).extend(values)
    types = {"seed": pa.int32(), "sample": pa.int32(), "epoch": pa.int32(),
             "model_id": pa.string(), "weights": pa.list_(pa.float32()),
             "curve": pa.list_(pa.float64())}
    table = pa.table({k: pa.array(vals, type=types.get(k)) for k, vals in cols.items()})
    # which result these rows belong to: load_predictions refuses stale files
    table = table.replace_schema_metadata({"bench.result": _result_key(result)})
    path = predictions_path(result, root)
    ensure_dir(path.parent)
    atomic_write_with(path, lambda f: pq.write_table(table, f))
    return path


def load_predictions(result: TaskResult, root: str | Path) -> Any:
    """The per-item predictions of ``result`` under ``root`` as a ``pyarrow.Table``.

    Raises:
        ResultSchemaError: no predictions file (run ``bench run --save-predictions``).
    """
    import pyarrow.parquet as pq

    path = predictions_path(result, root)
    if not path.is_file():
        raise ResultSchemaError(
            f"no per-item predictions for {result.method.name} / {result.task.name} at {path}: "
            "re-run `bench run ... --save-predictions` with the same --out"
        )
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as e:
        raise ResultSchemaError(f"cannot read predictions file {path}: {e}") from None
    stamp = (table.schema.metadata or {}).get(b"bench.result", b"").decode()
    if stamp != _result_key(result):
        raise ResultSchemaError(
            f"predictions file {path} belongs to another run than {result.relative_path()} "
            "(stale); re-run `bench run ... --save-predictions` with the same --out"
        )
    return table


def _result_key(result: TaskResult) -> str:
    """Identifies the run a predictions file belongs to."""
    return f"{result.task.name}|{result.method.name}|{result.zoo.content_hash}|" \
        f"{result.timestamp.isoformat()}|{','.join(map(str, result.seeds))}"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`TaskResult` (what ``results.schema.json`` holds)."""
    schema = TaskResult.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"modelzoo-toolkit/bench-results-v{SCHEMA_VERSION}", **schema}


def json_schema_text() -> str:
    """:func:`json_schema` as the exact text of the published file."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def write_json_schema(path: str | Path = SCHEMA_FILE) -> Path:
    """Write the JSON Schema file and return its path."""
    p = Path(path)
    atomic_write_bytes(p, json_schema_text().encode())
    return p


def git_hash() -> str | None:
    """The commit of the checkout this package runs from, or ``None``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
            text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    h = out.stdout.strip()
    return h if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", h) else None


def utc_now() -> _dt.datetime:
    """Current UTC time, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


if __name__ == "__main__":
    print(write_json_schema())
