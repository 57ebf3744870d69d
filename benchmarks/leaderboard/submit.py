"""``make_submission``: package ``bench run --save-predictions`` output into one JSON file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import modelzoo
from benchmarks.errors import OutputsError, ResultSchemaError
from benchmarks.leaderboard.errors import LeaderboardError
from benchmarks.leaderboard.safety import parse_submission_bytes, validation_summary
from benchmarks.leaderboard.schema import (
    MethodCard,
    Submission,
    TaskSubmission,
    items_from_outputs,
    json_bytes,
)
from benchmarks.leaderboard.score import HeldOutZoo
from benchmarks.leaderboard.view import HeldOutView, is_view
from benchmarks.registry import SUITES, TASKS, evaluator_for
from benchmarks.results import (
    TaskResult,
    load_predictions,
    load_results,
    require_verified,
    utc_now,
)
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir


def _flat_meta(meta: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested method meta flattened to ``a.b`` keys with scalar / list-of-scalar values."""
    out: dict[str, Any] = {}
    for k, v in meta.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_meta(v, f"{key}."))
        elif isinstance(v, list) and all(
            isinstance(x, (str, int, float, bool)) or x is None for x in v
        ):
            out[key] = v
        elif isinstance(v, (str, int, float, bool)) or v is None:
            out[key] = v
        else:
            out[key] = json.dumps(v, sort_keys=True)
    return out


def _by_seed(table: dict[str, list[Any]], seeds: Sequence[int]) -> list[list[int]]:
    rows: dict[int, list[int]] = {s: [] for s in seeds}
    for i, s in enumerate(table["seed"]):
        if s not in rows:
            raise LeaderboardError(f"predictions hold seed {s}, the result only {list(seeds)}")
        rows[s].append(i)
    return [rows[s] for s in seeds]


def _task_submission(result: TaskResult, root: Path, *, view: bool = False) -> TaskSubmission:
    """One task of a submission; ``view``: predictions of a label-free view (by row id,
    without claims: the local scores are on the public zoo, not on the board's rows)."""
    table = load_predictions(result, root).to_pydict()
    groups = _by_seed(table, result.seeds)
    try:
        outputs = evaluator_for(result.task.type).rescorable_items(result, table, groups,
                                                                   view=view)
    except OutputsError as e:
        raise LeaderboardError(str(e)) from None
    items = items_from_outputs(outputs)
    claimed = {} if view else {m: s.mean for m, s in result.scores.get("test", {}).items()}
    return TaskSubmission(
        task=result.task.name, task_version=result.task.version, type=result.task.type,
        seeds=list(result.seeds), claimed=claimed, items=items)


def make_submission(
    *,
    results: str | Path,
    zoo: str | Path,
    suite: str,
    method: str | None = None,
    version: str | None = None,
    display_name: str | None = None,
    authors: Sequence[str] = (),
    url: str | None = None,
    description: str = "",
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> Submission:
    """Package one method's results and per-item predictions on ``zoo`` into a submission.

    Args:
        results: results root of ``bench run --save-predictions --out``.
        zoo: the zoo the results were computed on (its pin goes into the submission), or
            the label-free view of a held-out board that ``bench run --heldout`` predicted.
        suite: suite key; every task of it that the zoo can serve must have a result.
        method: method name in ``results`` (needed only if it holds several).
        version: method version (default: ``meta["version"]`` of its results, else ``"1"``).
        display_name: shown on the board (default: the method name).
        authors: author names.
        url: paper or code URL (http / https).
        description: a few sentences.
        out: write the submission JSON here (atomically).
        data_dir: where non-bundled source datasets live.

    Returns:
        The validated submission (the file passes the board's own checks).

    Raises:
        LeaderboardError: results or predictions missing / inconsistent, or invalid metadata.
        UnverifiedResultError: a result was made with ``bench run --no-verify``.
        ShardChecksumError: a shard of ``zoo`` is missing or corrupt.
    """
    view = is_view(zoo)
    if view:  # a held-out board's label-free view: results of `bench run --heldout VIEW`
        opened = HeldOutView(zoo)
        pin = opened.pin
        mine = [r for r in load_results(results)
                if r.details.get("heldout", {}).get("content_hash") == pin.content_hash]
        scored = set(opened.manifest.tasks)
        how = f"--zoo PUBLIC_ZOO --heldout {zoo}"
    else:
        held = HeldOutZoo(zoo, data_dir=data_dir)
        pin = held.pin
        mine = [r for r in load_results(results) if r.zoo.content_hash == pin.content_hash
                and "heldout" not in r.details]
        how = f"--zoo {zoo}"
    names = sorted({r.method.name for r in mine})
    if method is None:
        if len(names) != 1:
            raise LeaderboardError(
                f"results under {results} for zoo {pin.name} v{pin.version} hold methods "
                f"{names or 'none'}; choose one with --method")
        method = names[0]
    by_task = {r.task.name: r for r in mine if r.method.name == method}
    required = ([TASKS.get(t) for t in SUITES.get(suite).tasks if t in scored] if view
                else held.required_tasks(suite))
    missing = [t.name for t in required if t.name not in by_task]
    if missing:
        raise LeaderboardError(
            f"no results of {method!r} on zoo {pin.name} v{pin.version} for task(s) "
            f"{', '.join(missing)} of suite {suite}; run `bench run --suite {suite} --method "
            f"{method} {how} --out {results} --save-predictions` first")
    require_verified(by_task[t.name] for t in required)  # a --no-verify run claims no pin
    try:
        tasks = [_task_submission(by_task[t.name], Path(results), view=view) for t in required]
    except ResultSchemaError as e:
        raise LeaderboardError(str(e)) from None
    meta = by_task[required[0].name].method.meta
    try:
        card = MethodCard(
            name=method, version=str(version or meta.get("version", "1")),
            display_name=display_name or method, description=description,
            authors=list(authors), url=url,
            meta=_flat_meta({k: v for k, v in meta.items() if k != "version"}))
        sub = Submission(created=utc_now(), toolkit_version=modelzoo.__version__, method=card,
                         zoo=pin, suite=suite, tasks=tasks)
    except ValidationError as e:
        raise LeaderboardError(f"invalid submission metadata: {validation_summary(e)}") from None
    data = json_bytes(sub, compact=True)
    sub = parse_submission_bytes(data, source="the new submission")  # the board's own checks
    if out is not None:
        path = Path(out)
        ensure_dir(path.parent)
        atomic_write_bytes(path, data)
    return sub
