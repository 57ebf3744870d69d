"""Re-scoring a submission against the board's held-out zoo (claims are never trusted).

Each task is re-scored by its type's evaluator
(:meth:`benchmarks.evaluators.base.Evaluator.rescore`), to which the board hands the task's
items as the evaluators' re-scorable outputs (:meth:`TaskSubmission.outputs`) and its zoo as
their :class:`~benchmarks.evaluators.outputs.ReferenceZoo` (:class:`HeldOutZoo`); the
evaluators' :class:`~benchmarks.errors.OutputsError` come back as the board's
:class:`InvalidSubmissionError` / :class:`IncompleteSubmissionError`:

* Property tasks: the predictions are aligned to the zoo's healthy test checkpoints by
  ``(model_id, epoch)`` (open boards) or by the opaque row ids of the board's label-free
  view, mapped back through the board's key (held-out boards), and scored with the task's
  metrics against the labels read from the zoo (:func:`benchmarks.scoring.score_predictions`),
  per seed, then mean ± std.
* Initialization / generation tasks: the submitted weight vectors are replayed through
  :func:`benchmarks.evaluate` as a method whose ``sample`` returns them, so the board loads,
  fine-tunes and scores them exactly as ``bench run`` does, on the board's zoo and data.
  The per-sample scores the submission claims are compared with the board's own.

On held-out boards every task is scored three times: on all the view's rows (kept for
audits and ``verify``), on the feedback half (returned to the submitter) and on the ranking
half (private until a release); see :mod:`benchmarks.leaderboard.ranking`.

Claimed scores that differ from the recomputed ones by more than ``tolerance`` are listed as
*discrepancies*; the board always records its own numbers (strict mode rejects instead).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.errors import (
    BenchmarkError,
    MissingOutputsError,
    OutputsError,
    TaskNotApplicableError,
)
from benchmarks.evaluators.outputs import ALL_ROWS
from benchmarks.leaderboard.errors import (
    IncompleteSubmissionError,
    InvalidSubmissionError,
    LeaderboardError,
    ZooVersionError,
)
from benchmarks.leaderboard.ranking import FEEDBACK, RANKING, split_masks
from benchmarks.leaderboard.schema import (
    HeldOutInfo,
    PropertyItems,
    RowItems,
    Submission,
    TaskScore,
    ZooPin,
)
from benchmarks.registry import SUITES, TASKS, evaluator_for
from benchmarks.results import TaskResult, load_predictions
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.zoo import EvalZoo, check_applicable, check_pin, tasks_for_zoo
from modelzoo.storage.manifest import split_hashes

#: Default absolute tolerance between claimed and recomputed scores.
DEFAULT_TOLERANCE = 1e-4


def _short(h: str) -> str:
    return h.split(":", 1)[-1][:12]


class HeldOutZoo:
    """The board's zoo, opened once: pin, required tasks and test labels; the evaluators'
    :class:`~benchmarks.evaluators.outputs.ReferenceZoo` (rows keyed by the view's row ids on
    held-out boards, by checkpoint on open boards)."""

    def __init__(self, path: str | Path, *, data_dir: str | Path | None = None,
                 heldout: HeldOutInfo | None = None, secret: bytes | None = None) -> None:
        self.path = Path(path)
        self.data_dir = data_dir
        self.zoo = EvalZoo(self.path, str(data_dir) if data_dir is not None else None)
        self.manifest = self.zoo.manifest
        self.heldout = heldout
        self._secret = secret
        self.label = "the board's view" if heldout is not None else "the board's zoo"
        if heldout is not None and secret is None:
            raise LeaderboardError("a held-out board needs its secret key to map row ids")

    @property
    def zoo_pin(self) -> ZooPin:
        """Name, version, content hash and split hashes of the zoo itself."""
        m = self.manifest
        return ZooPin(name=m.name, version=m.version, content_hash=m.content_hash,
                      split_hashes=m.split_hashes or split_hashes(m.models))

    @property
    def pin(self) -> ZooPin:
        """What submissions must pin: the label-free view (held-out boards) or the zoo."""
        return self.heldout.view if self.heldout is not None else self.zoo_pin

    def row_ids(self) -> list[str] | None:
        """Opaque ids of the healthy test checkpoints in zoo order (held-out boards; open
        boards key them by checkpoint: ``None``)."""
        from benchmarks.leaderboard.view import row_id

        if self._secret is None:
            return None
        return [row_id(self._secret, m, e) for m, e in self.test_items()]

    def halves(self) -> dict[str, np.ndarray] | None:
        """Masks of the feedback and ranking rows over the healthy test rows in zoo order
        (held-out boards; open boards have no halves: ``None``)."""
        if self.heldout is None or self._secret is None:
            return None
        ids = [m for m, _ in self.test_items()]
        return split_masks(self._secret, ids, self.heldout.rules.ranking_fraction)

    def rerun(self, method: Any, task: TaskMetadata,
              seeds: Sequence[int]) -> tuple[TaskResult, dict[str, list[Any]]]:
        """``bench run`` of ``task`` for ``method`` on the board's zoo (with saved outputs)."""
        from benchmarks.runner import evaluate

        with tempfile.TemporaryDirectory(prefix="board-rescore-") as tmp:
            (res,) = evaluate(method=method, zoo=self.path, tasks=[task], seeds=list(seeds),
                              out=tmp, save_predictions=True, data_dir=self.data_dir,
                              progress=lambda _msg: None)
            return res, load_predictions(res, tmp).to_pydict()

    def required_tasks(self, suite: str) -> list[TaskMetadata]:
        """The suite's tasks that can be scored on this zoo (as ``bench run`` decides; in a
        suite that spans several zoos, those pinned to this zoo), of the task types a
        submission can hold (not reconstruction: a held-out board's models cannot be encoded
        by the submitter).

        Raises:
            LeaderboardError: the zoo is not the one the suite's tasks are pinned to.
        """
        out = []
        tasks = [TASKS.get(name) for name in SUITES.get(suite).tasks]
        for task in tasks_for_zoo(tasks, {t.zoo.name for t in tasks}, self.manifest.name):
            if evaluator_for(task.type).items is None:  # no submission items (reconstruction)
                continue
            try:
                check_applicable(task, self.zoo)
            except TaskNotApplicableError:
                continue
            try:
                if self.heldout is None:
                    check_pin(task, self.manifest, allow_unpinned=False)
                elif (task.zoo.name, task.zoo.version) != (self.manifest.name,
                                                           self.manifest.version):
                    raise BenchmarkError(f"task {task.name} is pinned to zoo {task.zoo.name} "
                                         f"v{task.zoo.version}")
            except BenchmarkError as e:
                raise LeaderboardError(f"the board's zoo cannot score suite {suite}: {e}") from None
            out.append(task)
        return out

    def test_items(self) -> list[tuple[str, int]]:
        """Healthy test checkpoints ``(model_id, epoch)`` in zoo order."""
        ids = self.zoo.column("test", "model_id").tolist()
        epochs = self.zoo.column("test", "epoch").tolist()
        return [(str(m), int(e)) for m, e in zip(ids, epochs, strict=True)]


def check_zoo(pin: ZooPin, held: HeldOutZoo) -> None:
    """Refuse a submission made on another zoo version, content or split.

    Raises:
        ZooVersionError: name, version, content hash or a split hash differ.
    """
    ours = held.pin
    public = held.heldout.public_zoo if held.heldout is not None else None
    if held.heldout is not None and pin.content_hash in (
            held.zoo_pin.content_hash, public.content_hash if public else None):
        what = "whose labels are public" if public and pin.content_hash == \
            public.content_hash else "which is the board's private zoo, never published"
        raise ZooVersionError(
            f"the submission was made on zoo {pin.name} v{pin.version} "
            f"({_short(pin.content_hash)}...), {what}; this board scores only its "
            f"label-free held-out view {ours.name} ({_short(ours.content_hash)}...). "
            "Run `bench run --zoo PUBLIC_ZOO --heldout VIEW --save-predictions` and "
            "`bench submit --zoo VIEW` again.")
    problems = []
    if (pin.name, pin.version) != (ours.name, ours.version):
        problems.append(f"zoo {pin.name} v{pin.version} (board: {ours.name} v{ours.version})")
    if pin.content_hash != ours.content_hash:
        problems.append(f"content hash {_short(pin.content_hash)}... (board: "
                        f"{_short(ours.content_hash)}...)")
    for split in sorted(set(pin.split_hashes) | set(ours.split_hashes)):
        a, b = pin.split_hashes.get(split), ours.split_hashes.get(split)
        if a != b:
            problems.append(f"{split} split hash {_short(a) if a else 'missing'} (board: "
                            f"{_short(b) if b else 'missing'})")
    if problems:
        raise ZooVersionError(
            "the submission was made on a different zoo than this board scores: "
            + "; ".join(problems)
            + f". Run `bench run` on {ours.name} v{ours.version} and `bench submit` again."
        )


@dataclass
class Rescored:
    """The board's scores of a submission and how the claims compare.

    Attributes:
        scores: on every scored row.
        claimed: the claims per task.
        discrepancies: claims that differ from the recomputed scores.
        feedback: held-out boards: on the feedback half.
        ranking: held-out boards: on the ranking half.
    """

    scores: list[TaskScore]
    claimed: dict[str, dict[str, float]]
    discrepancies: list[str] = field(default_factory=list)
    feedback: list[TaskScore] = field(default_factory=list)
    ranking: list[TaskScore] = field(default_factory=list)


def check_coverage(sub: Submission, required: Sequence[TaskMetadata]) -> None:
    """Every required task exactly once, nothing else, with the task's version and type.

    Raises:
        IncompleteSubmissionError: a required task is missing.
        InvalidSubmissionError: an unknown / duplicated task, or a version / type mismatch.
    """
    names = [t.task for t in sub.tasks]
    dup = sorted(n for n, c in Counter(names).items() if c > 1)
    if dup:
        raise InvalidSubmissionError(f"tasks {dup} appear more than once in the submission")
    want = {t.name: t for t in required}
    missing = [n for n in want if n not in names]
    if missing:
        raise IncompleteSubmissionError(
            f"the submission does not cover suite {sub.suite}: missing task(s) "
            f"{', '.join(missing)}. Every task of the suite that the zoo can serve is required; "
            f"run `bench run --suite {sub.suite} --save-predictions` and `bench submit` again."
        )
    extra = [n for n in names if n not in want]
    if extra:
        raise InvalidSubmissionError(
            f"task(s) {', '.join(extra)} are not scored by suite {sub.suite} on this zoo; "
            "remove them"
        )
    for t in sub.tasks:
        decl = want[t.task]
        if t.task_version != decl.version or t.type != decl.type:
            raise InvalidSubmissionError(
                f"task {t.task}: submission has version {t.task_version} ({t.type}); the board "
                f"scores version {decl.version} ({decl.type}). Update the toolkit and re-run."
            )


def rescore(
    sub: Submission, held: HeldOutZoo, *, tolerance: float = DEFAULT_TOLERANCE
) -> Rescored:
    """Recompute every score of ``sub`` on the held-out zoo and compare the claims.

    Raises:
        ZooVersionError, IncompleteSubmissionError, InvalidSubmissionError: see
        :func:`check_zoo`, :func:`check_coverage` and the module docstring.
    """
    check_zoo(sub.zoo, held)
    required = held.required_tasks(sub.suite)
    check_coverage(sub, required)
    decl = {t.name: t for t in required}
    halves = held.halves()
    scores, claimed, notes = [], {}, []
    by_half: dict[str, list[TaskScore]] = {FEEDBACK: [], RANKING: []}
    for name in [t.name for t in required]:  # suite order
        t = next(x for x in sub.tasks if x.task == name)
        task = decl[name]
        ev = evaluator_for(task.type)
        if (ev.items == "property") != isinstance(t.items, (PropertyItems, RowItems)):
            raise InvalidSubmissionError(
                f"task {name}: a {task.type} task takes "
                f"{'property predictions' if ev.items == 'property' else 'weight samples'}")
        if isinstance(t.items, PropertyItems) and held.heldout is not None:
            raise InvalidSubmissionError(
                f"task {name}: this board scores its label-free view by row id, not zoo "
                "checkpoints (model_id, epoch); predict the view with `bench run --heldout "
                "VIEW --save-predictions`")
        if isinstance(t.items, RowItems) and held.heldout is None:
            raise InvalidSubmissionError(
                f"task {name}: row-id predictions are for held-out boards; this board "
                "scores zoo checkpoints (model_id, epoch)")
        try:
            sets = ev.rescore(t.outputs(), task, held, method=sub.method.name,
                              tolerance=tolerance, notes=notes, subsets=halves)
        except MissingOutputsError as e:
            raise IncompleteSubmissionError(str(e)) from None
        except OutputsError as e:
            raise InvalidSubmissionError(str(e)) from None
        stats = sets[ALL_ROWS]
        for out, key in ((scores, ALL_ROWS), *((by_half[h], h) for h in halves or ())):
            out.append(TaskScore(task=name, task_version=task.version, type=task.type,
                                 main_score=task.main_score, seeds=list(t.seeds),
                                 scores=sets[key]))
        claimed[name] = dict(t.claimed)
        for metric, value in t.claimed.items():
            if metric not in stats:
                notes.append(f"{name}: claimed metric {metric!r} is not one the task reports")
            elif abs(value - stats[metric].mean) > tolerance:
                notes.append(f"{name} {metric}: claimed {value:.6g}, recomputed "
                             f"{stats[metric].mean:.6g}")
    return Rescored(scores=scores, claimed=claimed, discrepancies=notes,
                    feedback=by_half[FEEDBACK], ranking=by_half[RANKING])
