"""Re-scoring a submission against the board's held-out zoo (claims are never trusted).

* Property tasks: the predictions are aligned to the zoo's healthy test checkpoints by
  ``(model_id, epoch)`` (open boards) or by the opaque row ids of the board's label-free
  view, mapped back through the board's key (held-out boards), and scored with the task's
  metrics against the labels read from the zoo (:func:`benchmarks.scoring.score_predictions`),
  per seed, then mean ± std.
* Initialization / generation tasks: the submitted weight vectors are replayed through
  :func:`benchmarks.evaluate` as a method whose ``sample`` returns them, so the board loads,
  fine-tunes and scores them exactly as ``bench run`` does, on the board's zoo and data.
  The per-sample scores the submission claims are compared with the board's own.

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

from benchmarks.errors import BenchmarkError, TaskNotApplicableError
from benchmarks.leaderboard.errors import (
    IncompleteSubmissionError,
    InvalidSubmissionError,
    LeaderboardError,
    ZooVersionError,
)
from benchmarks.leaderboard.schema import (
    HeldOutInfo,
    PropertyItems,
    RowItems,
    SampleItems,
    Submission,
    TaskScore,
    TaskSubmission,
    ZooPin,
)
from benchmarks.registry import SUITES, TASKS
from benchmarks.results import ScoreStat, load_predictions
from benchmarks.runner import _Zoo, check_applicable, check_pin, evaluate, tasks_for_zoo
from benchmarks.scoring import class_labels, score_predictions
from benchmarks.tasks.metadata import TaskMetadata
from modelzoo.storage.manifest import split_hashes

#: Default absolute tolerance between claimed and recomputed scores.
DEFAULT_TOLERANCE = 1e-4


def _short(h: str) -> str:
    return h.split(":", 1)[-1][:12]


class HeldOutZoo:
    """The board's zoo, opened once: pin, required tasks and test labels."""

    def __init__(self, path: str | Path, *, data_dir: str | Path | None = None,
                 heldout: HeldOutInfo | None = None, secret: bytes | None = None) -> None:
        self.path = Path(path)
        self.data_dir = data_dir
        self.zoo = _Zoo(self.path, str(data_dir) if data_dir is not None else None)
        self.manifest = self.zoo.manifest
        self.heldout = heldout
        self._secret = secret
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

    def row_ids(self) -> list[str]:
        """Opaque ids of the healthy test checkpoints in zoo order (held-out boards)."""
        from benchmarks.leaderboard.view import row_id

        assert self._secret is not None
        return [row_id(self._secret, m, e) for m, e in self.test_items()]

    def required_tasks(self, suite: str) -> list[TaskMetadata]:
        """The suite's tasks that can be scored on this zoo (as ``bench run`` decides; in a
        suite that spans several zoos, those pinned to this zoo).

        Raises:
            LeaderboardError: the zoo is not the one the suite's tasks are pinned to.
        """
        out = []
        tasks = [TASKS.get(name) for name in SUITES.get(suite).tasks]
        for task in tasks_for_zoo(tasks, {t.zoo.name for t in tasks}, self.manifest.name):
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
    """The board's scores of a submission and how the claims compare."""

    scores: list[TaskScore]
    claimed: dict[str, dict[str, float]]
    discrepancies: list[str] = field(default_factory=list)


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


def _check_lengths(t: TaskSubmission, n: int, predictions: Sequence[Sequence[Any]]) -> None:
    if len(predictions) != len(t.seeds):
        raise InvalidSubmissionError(
            f"task {t.task}: wrong lengths: {len(predictions)} prediction lists for "
            f"{len(t.seeds)} seeds (one list per seed)")
    for i, p in enumerate(predictions):
        if len(p) != n:
            raise InvalidSubmissionError(
                f"task {t.task}: wrong lengths: seed {t.seeds[i]} has {len(p)} predictions for "
                f"{n} items")


def _property_scores(
    t: TaskSubmission, items: PropertyItems, task: TaskMetadata, held: HeldOutZoo
) -> dict[str, ScoreStat]:
    n = len(items.model_id)
    if len(items.epoch) != n:
        raise InvalidSubmissionError(
            f"task {t.task}: wrong lengths: {n} model_id values but {len(items.epoch)} epochs")
    _check_lengths(t, n, items.predictions)
    keys = list(zip(items.model_id, items.epoch, strict=True))
    dup = [k for k, c in Counter(keys).items() if c > 1]
    if dup:
        raise InvalidSubmissionError(f"task {t.task}: item {dup[0]} is predicted twice")
    truth = held.test_items()
    truth_set = set(truth)
    pos = {k: i for i, k in enumerate(keys)}
    unknown = [k for k in keys if k not in truth_set]
    if unknown:
        raise InvalidSubmissionError(
            f"task {t.task}: {len(unknown)} item(s) are not healthy test checkpoints of the "
            f"board's zoo, e.g. {unknown[0]}")
    missing = [k for k in truth if k not in pos]
    if missing:
        raise IncompleteSubmissionError(
            f"task {t.task}: {len(missing)} of {len(truth)} test items have no prediction, "
            f"e.g. (model_id={missing[0][0]!r}, epoch={missing[0][1]}); predict every test "
            "checkpoint (`bench run --save-predictions` does)")
    return _scores_in_order(t, items.predictions, [pos[k] for k in truth], task, held)


def _row_scores(
    t: TaskSubmission, items: RowItems, task: TaskMetadata, held: HeldOutZoo
) -> dict[str, ScoreStat]:
    """Predictions keyed by the view's row ids, scored against the board's private labels."""
    n = len(items.row_id)
    _check_lengths(t, n, items.predictions)
    truth = held.row_ids()
    if n != len(truth):
        raise InvalidSubmissionError(
            f"task {t.task}: wrong count: {n} predicted rows, the board's view has "
            f"{len(truth)}; predict every row of the view (`bench run --heldout VIEW "
            "--save-predictions` does)")
    dup = [k for k, c in Counter(items.row_id).items() if c > 1]
    if dup:
        raise InvalidSubmissionError(f"task {t.task}: row {dup[0]} is predicted twice")
    truth_set = set(truth)
    unknown = [k for k in items.row_id if k not in truth_set]
    if unknown:
        raise InvalidSubmissionError(
            f"task {t.task}: {len(unknown)} row id(s) are not rows of the board's view, e.g. "
            f"{unknown[0]}; predict the rows of the view named in the submission")
    pos = {k: i for i, k in enumerate(items.row_id)}
    return _scores_in_order(t, items.predictions, [pos[k] for k in truth], task, held)


def _scores_in_order(
    t: TaskSubmission, predictions: Sequence[Sequence[Any]], order: list[int],
    task: TaskMetadata, held: HeldOutZoo,
) -> dict[str, ScoreStat]:
    """Score per seed: ``predictions[seed][order[i]]`` is the prediction of test row ``i``."""
    idx = np.asarray(order, dtype=np.int64)
    y = held.zoo.column("test", task.target)
    numeric = task.type == "regression"
    per_seed = []
    for p in predictions:
        if numeric != all(isinstance(v, float) for v in p):
            want = "numbers" if numeric else "class labels (strings)"
            raise InvalidSubmissionError(f"task {t.task}: {task.type} predictions must be {want}")
        arr = np.asarray(p, dtype=np.float64 if numeric else object)[idx]
        per_seed.append(score_predictions(task.metrics,
                                          y.astype(np.float64) if numeric else class_labels(y),
                                          arr if numeric else class_labels(arr)))
    return {m: ScoreStat.of([s[m] for s in per_seed]) for m in task.metrics}


class _Replay:
    """A method whose ``sample`` returns submitted weights (one ``[n, P]`` array per seed)."""

    def __init__(self, name: str, weights: dict[int, np.ndarray]) -> None:
        self.name = name
        self._weights = weights

    def meta(self) -> dict[str, Any]:
        return {"replay": True}

    def sample(self, *, zoo: Path, manifest: Any, target: Any, n: int, seed: int) -> np.ndarray:
        return self._weights[seed]


def _sample_scores(
    t: TaskSubmission, items: SampleItems, task: TaskMetadata, held: HeldOutZoo, method: str,
    tolerance: float, notes: list[str],
) -> dict[str, ScoreStat]:
    spec = task.finetune
    assert spec is not None
    target = held.zoo.target_model(task)
    if (items.architecture, items.activation) != (target.architecture, target.activation):
        raise InvalidSubmissionError(
            f"task {t.task}: samples are for {items.architecture} / {items.activation}; the "
            f"board's target model is {target.architecture} / {target.activation}")
    if len(items.weights) != len(t.seeds):
        raise InvalidSubmissionError(f"task {t.task}: wrong lengths: {len(items.weights)} "
                                     f"sample lists for {len(t.seeds)} seeds")
    weights = {}
    for seed, w in zip(t.seeds, items.weights, strict=True):
        if len(w) != spec.n_models or any(len(v) != target.num_params for v in w):
            lens = sorted({len(v) for v in w})
            raise InvalidSubmissionError(
                f"task {t.task}: wrong lengths: seed {seed} has {len(w)} samples of "
                f"{lens} parameters; the task needs {spec.n_models} samples of "
                f"{target.num_params}")
        weights[seed] = np.asarray(w, dtype=np.float32)
    if len(set(t.seeds)) != len(t.seeds):
        raise InvalidSubmissionError(f"task {t.task}: seeds repeat: {t.seeds}")
    with tempfile.TemporaryDirectory(prefix="board-rescore-") as tmp:
        (res,) = evaluate(method=_Replay(method, weights), zoo=held.path, tasks=[task],
                          seeds=t.seeds, out=tmp, save_predictions=True,
                          data_dir=held.data_dir, progress=lambda _msg: None)
        table = load_predictions(res, tmp).to_pydict()
    _compare_items(t, items, table, tolerance, notes)
    return dict(res.scores["test"])


def _compare_items(t: TaskSubmission, items: SampleItems, ours: dict[str, list[Any]],
                   tolerance: float, notes: list[str]) -> None:
    """Note per-sample claims that differ from the board's per-sample scores."""
    claims: dict[str, list[list[Any]]] = dict(items.item_scores)
    if items.curves:
        claims["curve"] = items.curves
    for key, claimed in claims.items():
        if key not in ours or key == "weights":
            notes.append(f"{t.task}: per-sample score {key!r} is not one the task computes")
            continue
        theirs = [v for per_seed in claimed for v in per_seed]
        mine = ours[key]
        if len(theirs) != len(mine):
            notes.append(f"{t.task}: {len(theirs)} per-sample {key} claims for {len(mine)} "
                         "samples")
            continue
        a = np.asarray(mine, dtype=np.float64).ravel()
        try:
            b = np.asarray(theirs, dtype=np.float64).ravel()
        except ValueError:
            b = np.array([])
        if a.shape != b.shape:
            notes.append(f"{t.task}: per-sample {key} claims have the wrong shape")
            continue
        diff = np.abs(a - b)
        bad = int((diff > tolerance).sum())
        if bad:
            notes.append(f"{t.task}: {bad} of {a.size} per-sample {key} values differ from the "
                         f"board's (max |diff| {diff.max():.4g})")


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
    scores, claimed, notes = [], {}, []
    for name in [t.name for t in required]:  # suite order
        t = next(x for x in sub.tasks if x.task == name)
        task = decl[name]
        if task.is_property != isinstance(t.items, (PropertyItems, RowItems)):
            raise InvalidSubmissionError(
                f"task {name}: a {task.type} task takes "
                f"{'property predictions' if task.is_property else 'weight samples'}")
        if isinstance(t.items, PropertyItems) and held.heldout is not None:
            raise InvalidSubmissionError(
                f"task {name}: this board scores its label-free view by row id, not zoo "
                "checkpoints (model_id, epoch); predict the view with `bench run --heldout "
                "VIEW --save-predictions`")
        if isinstance(t.items, RowItems) and held.heldout is None:
            raise InvalidSubmissionError(
                f"task {name}: row-id predictions are for held-out boards; this board scores "
                "zoo checkpoints (model_id, epoch)")
        if isinstance(t.items, RowItems):
            stats = _row_scores(t, t.items, task, held)
        elif isinstance(t.items, PropertyItems):
            stats = _property_scores(t, t.items, task, held)
        else:
            stats = _sample_scores(t, t.items, task, held, sub.method.name, tolerance, notes)
        scores.append(TaskScore(task=name, task_version=task.version, type=task.type,
                                main_score=task.main_score, seeds=list(t.seeds), scores=stats))
        claimed[name] = dict(t.claimed)
        for metric, value in t.claimed.items():
            if metric not in stats:
                notes.append(f"{name}: claimed metric {metric!r} is not one the task reports")
            elif abs(value - stats[metric].mean) > tolerance:
                notes.append(f"{name} {metric}: claimed {value:.6g}, recomputed "
                             f"{stats[metric].mean:.6g}")
    return Rescored(scores=scores, claimed=claimed, discrepancies=notes)
