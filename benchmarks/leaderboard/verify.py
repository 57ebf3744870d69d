"""``verify_entry``: the verified track of a held-out board.

The maintainer installs the submitted method, re-runs it exactly as a submitter would
(``bench run --zoo PUBLIC --heldout VIEW --save-predictions``, on a view the board re-creates
from its private zoo), re-scores the re-run with the board's own scorer, and marks the entry
verified when the re-run reproduces the submitted per-item outputs (predictions by row id,
sampled weights) and every recorded score within ``tolerance``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

import modelzoo
from benchmarks.leaderboard.board import (
    SUBMISSIONS_DIR,
    _locked,
    load_board,
    load_index,
    open_board_zoo,
)
from benchmarks.leaderboard.errors import LeaderboardError
from benchmarks.leaderboard.safety import read_submission
from benchmarks.leaderboard.schema import (
    BoardEntry,
    RowItems,
    SampleItems,
    TaskSubmission,
    Verification,
    json_bytes,
)
from benchmarks.leaderboard.score import DEFAULT_TOLERANCE, rescore
from benchmarks.leaderboard.view import ViewedZoo
from benchmarks.results import utc_now
from modelzoo.storage.atomic import atomic_write_bytes


def _prediction_difference(
    submitted: TaskSubmission, rerun: TaskSubmission, tolerance: float
) -> str | None:
    """Why the re-run's per-item outputs differ from the submitted ones (None: they match).

    Property predictions are aligned by row id: numbers must agree within ``tolerance``
    (relative to their scale), class labels exactly; sampled weights within ``tolerance``.
    """
    a, b = submitted.items, rerun.items
    if submitted.seeds != rerun.seeds or a.kind != b.kind:
        return f"{submitted.task}: the re-run has other seeds or outputs"
    if isinstance(a, RowItems) and isinstance(b, RowItems):
        pos = {r: i for i, r in enumerate(b.row_id)}
        if set(pos) != set(a.row_id):
            return f"{submitted.task}: the re-run predicts other rows"
        order = [pos[r] for r in a.row_id]
        for seed, pa_, pb in zip(submitted.seeds, a.predictions, b.predictions, strict=True):
            mine = [pb[i] for i in order]
            if all(isinstance(v, float) for v in pa_):
                x, y = np.asarray(pa_, dtype=np.float64), np.asarray(mine, dtype=np.float64)
                if not np.allclose(x, y, rtol=tolerance, atol=tolerance):
                    return (f"{submitted.task}: seed {seed}: predictions differ (max |diff| "
                            f"{np.abs(x - y).max():.4g})")
            elif list(pa_) != mine:
                n = sum(p != q for p, q in zip(pa_, mine, strict=True))
                return f"{submitted.task}: seed {seed}: {n} predicted classes differ"
    elif isinstance(a, SampleItems) and isinstance(b, SampleItems):
        x, y = np.asarray(a.weights, dtype=np.float64), np.asarray(b.weights, dtype=np.float64)
        if x.shape != y.shape or not np.allclose(x, y, rtol=tolerance, atol=tolerance):
            return f"{submitted.task}: the re-run samples other weights"
    return None


class VerificationError(LeaderboardError):
    """The re-run did not reproduce the entry's scores (the entry stays unverified)."""


def verify_entry(
    *,
    board: str | Path,
    entry: str,
    method: str | object,
    zoo: str | Path,
    tolerance: float = DEFAULT_TOLERANCE,
    data_dir: str | Path | None = None,
    threads: int | None = 1,
    progress: Callable[[str], None] | None = None,
) -> BoardEntry:
    """Re-run ``method`` on the board's label-free view and mark ``entry`` verified.

    Args:
        board: a held-out board (``bench leaderboard init``).
        entry: the entry id (as listed by ``bench leaderboard render``).
        method: the installed method (``module:object``, a registered name, or an object).
        zoo: the public zoo the method trains on (the board's recorded public zoo, if any).
        tolerance: largest |re-run - recorded| accepted per task and metric (mean over seeds).
        data_dir: where non-bundled source datasets live.
        threads: torch / BLAS threads of the re-run.
        progress: called with one line per step.

    Returns:
        The updated entry (with ``verification``).

    Raises:
        LeaderboardError: not a held-out board, unknown entry, or another public zoo.
        VerificationError: the re-run's scores differ (the board is unchanged).
    """
    from benchmarks.leaderboard.heldout import make_view
    from benchmarks.leaderboard.submit import make_submission
    from benchmarks.runner import evaluate
    from modelzoo.storage import open_manifest

    say = progress or (lambda _msg: None)
    root = Path(board)
    index, entries = load_board(root)
    if index.heldout is None or index.suite is None:
        raise LeaderboardError(f"{root} is not a held-out board with entries; only held-out "
                               "boards (`bench leaderboard init`) have a verified track")
    old = next((e for e in entries if e.id == entry), None)
    if old is None:
        raise LeaderboardError(f"no entry {entry!r} on {root}; entries: "
                               f"{', '.join(e.id for e in entries) or 'none'}")
    pub = index.heldout.public_zoo
    m = open_manifest(zoo)  # the public zoo's shards verified before the re-run
    if pub is not None and m.content_hash != pub.content_hash:
        raise LeaderboardError(f"--zoo {zoo} is not the board's public zoo {pub.name} "
                               f"v{pub.version} ({pub.content_hash[:19]}...)")
    seeds = old.scores[0].seeds if old.scores else [0]
    held = open_board_zoo(root, index, None, data_dir=data_dir)
    with tempfile.TemporaryDirectory(prefix="board-verify-") as tmp:
        view = Path(tmp) / "view"
        vm = make_view(board=root, out=view, data_dir=data_dir)
        if vm.pin != index.heldout.view:
            raise LeaderboardError("the board's view cannot be re-created as published "
                                   "(held-out zoo or key changed); the board is inconsistent")
        say(f"re-running {method if isinstance(method, str) else type(method).__name__} on "
            f"the label-free view (seeds {seeds})")
        evaluate(method=method, zoo=ViewedZoo(zoo, view, data_dir), suite=index.suite,
                 seeds=seeds, out=Path(tmp) / "res", save_predictions=True, threads=threads,
                 progress=say)
        sub = make_submission(results=Path(tmp) / "res", zoo=view, suite=index.suite,
                              version=old.method.version, data_dir=data_dir)
        again = rescore(sub, held, tolerance=tolerance)
    diffs: list[tuple[float, str]] = []
    for s in old.scores:
        new = next((x for x in again.scores if x.task == s.task), None)
        if new is None:
            diffs.append((float("inf"), f"{s.task}: not produced by the re-run"))
            continue
        for metric, stat in s.scores.items():
            d = abs(stat.mean - new.scores[metric].mean)
            diffs.append((d, f"{s.task} {metric}: recorded {stat.mean:.6g}, re-run "
                             f"{new.scores[metric].mean:.6g}"))
    submitted = read_submission(root / SUBMISSIONS_DIR / f"{old.id}.json")
    worst = max((d for d, _ in diffs), default=0.0)
    for task in submitted.tasks:
        mine = next((t for t in sub.tasks if t.task == task.task), None)
        note = None if mine is None else _prediction_difference(task, mine, tolerance)
        if note is not None:
            diffs.append((float("inf"), note))
            worst = float("inf")
    if worst > tolerance:
        bad = [msg for d, msg in sorted(diffs, reverse=True) if d > tolerance]
        raise VerificationError(
            f"the re-run of entry {entry} does not reproduce its predictions and scores "
            f"(tolerance {tolerance:g}): " + "; ".join(bad[:5]) + ". The entry stays unverified.")
    name = method if isinstance(method, str) else f"{type(method).__module__}:" \
        f"{type(method).__qualname__}"
    updated = old.model_copy(update={"verification": Verification(
        method=name[:200], verified=utc_now(), toolkit_version=modelzoo.__version__,
        max_abs_diff=worst, tolerance=tolerance)})
    with _locked(root):
        rec = next((r for r in load_index(root).entries if r.id == entry), None)
        if rec is None:
            raise LeaderboardError(f"entry {entry!r} left the board during the re-run")
        atomic_write_bytes(root / rec.file, json_bytes(updated))
    return updated
