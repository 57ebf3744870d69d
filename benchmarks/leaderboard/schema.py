"""Pydantic schemas of submissions, board entries and the board index (all ``extra="forbid"``).

A *submission* (``bench submit``) is one JSON file: method card, zoo pin (name, version,
content hash, split hashes), suite, and per task the seeds, the claimed test scores and the
per-item predictions the board re-scores:

* property tasks (regression / classification): the test checkpoints ``(model_id, epoch)``
  and one prediction per checkpoint and seed (open boards), or the opaque row ids of the
  board's label-free held-out view and one prediction per row and seed (held-out boards);
* initialization / generation tasks: the sampled weight vectors per seed (``[seed][sample]
  [param]``) with the per-sample scores the runner computed (claims, re-checked).

Sizes are bounded twice: the file (``MAX_SUBMISSION_BYTES``) and every list / string here.
Models are validated in pydantic's strict mode from JSON (no coercion of ``true`` or
``"1"`` into numbers; NaN / inf are not numbers here).

The per-task items are the board's copy of the evaluators' re-scorable outputs
(:mod:`benchmarks.evaluators.outputs`); :func:`items_from_outputs` and
:meth:`TaskSubmission.outputs` convert between the two, so the evaluators never see this
schema.
"""

from __future__ import annotations

import datetime as _dt
import unicodedata
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from benchmarks.evaluators.outputs import (
    CheckpointPredictions,
    Items,
    RowPredictions,
    TaskOutputs,
    WeightSamples,
)
from benchmarks.results import ScoreStat
from benchmarks.tasks.metadata import TaskType

SUBMISSION_FORMAT = "modelzoo-leaderboard-submission"
BOARD_FORMAT = "modelzoo-leaderboard"
FORMAT_VERSION = 1

#: Largest submission file accepted (bytes); ``bench leaderboard add --max-bytes`` changes it.
MAX_SUBMISSION_BYTES = 64 * 1024 * 1024
#: Bounds on lists of a submission (the file-size limit is the first guard).
MAX_TASKS = 64
MAX_SEEDS = 16
MAX_ITEMS = 1_000_000
MAX_SAMPLES = 1_024
MAX_PARAMS = 10_000_000


def _plain_text(value: str) -> str:
    """Refuse control and format characters (incl. bidi overrides, zero-width) in short text."""
    if value.isascii() and value.isprintable():  # the common case: none of them
        return value
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise ValueError(f"must not contain control / format characters (found {ch!r})")
    return value


def _prose(value: str) -> str:
    """Like :func:`_plain_text` but newlines and tabs are allowed."""
    _plain_text(value.replace("\n", " ").replace("\t", " "))
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    if any(c.isspace() or c in "\"'<>`" for c in value):
        raise ValueError("must not contain spaces, quotes or angle brackets")
    return value


Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
Version = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,31}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_plain_text)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_plain_text)]
Prose = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_prose)]
Url = Annotated[str, StringConstraints(max_length=500), AfterValidator(_http_url)]
MetaScalar = (
    Annotated[str, StringConstraints(max_length=500), AfterValidator(_prose)]
    | int | float | bool | None
)
MetaValue = MetaScalar | Annotated[list[MetaScalar], Field(max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class MethodCard(_Strict):
    """Who and what is submitted.

    Attributes:
        name: method name as in its result files (lower case, digits, ``.-_``).
        version: method version; one entry per (name, version) on a board.
        display_name: free text shown on the board (escaped wherever it is rendered).
        description: a few sentences.
        authors: names.
        url: paper or code (http / https only).
        meta: the method's ``meta()`` from its results (flat: scalars or lists of scalars).
    """

    name: Slug
    version: Version
    display_name: Name
    description: Prose = ""
    authors: Annotated[list[Name], Field(max_length=32)] = []
    url: Url | None = None
    meta: Annotated[dict[Key, MetaValue], Field(max_length=64)] = {}


class ZooPin(_Strict):
    """The zoo a submission was made on (must be the board's held-out zoo)."""

    name: Name
    version: Version
    content_hash: Sha256
    split_hashes: Annotated[dict[Slug, Sha256], Field(max_length=8)]


class PropertyItems(_Strict):
    """Predictions of a regression / classification task: ``predictions[seed][item]`` for
    the test checkpoints ``(model_id[item], epoch[item])``; numbers for regression, class
    labels (strings) for classification."""

    kind: Literal["property"]
    model_id: Annotated[list[Key], Field(max_length=MAX_ITEMS)]
    epoch: Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=MAX_ITEMS)]
    predictions: Annotated[
        list[Annotated[list[float], Field(max_length=MAX_ITEMS)]]
        | list[Annotated[list[Key], Field(max_length=MAX_ITEMS)]],
        Field(min_length=1, max_length=MAX_SEEDS),
    ]


RowId = Annotated[str, StringConstraints(pattern=r"^r[0-9a-f]{20}$")]


class RowItems(_Strict):
    """Predictions of a regression / classification task on a held-out board's label-free
    view: ``predictions[seed][item]`` for the view rows ``row_id[item]`` (opaque ids)."""

    kind: Literal["rows"]
    row_id: Annotated[list[RowId], Field(max_length=MAX_ITEMS)]
    predictions: Annotated[
        list[Annotated[list[float], Field(max_length=MAX_ITEMS)]]
        | list[Annotated[list[Key], Field(max_length=MAX_ITEMS)]],
        Field(min_length=1, max_length=MAX_SEEDS),
    ]


class SampleItems(_Strict):
    """Samples of an initialization / generation task: ``weights[seed][sample][param]`` for
    the target model (architecture, activation), with the runner's per-sample scores
    (``item_scores[metric][seed][sample]``; initialization: ``curves[seed][sample][epoch]``)
    as claims that the board checks against its own."""

    kind: Literal["samples"]
    architecture: Key
    activation: Key
    weights: Annotated[
        list[Annotated[list[Annotated[list[float], Field(min_length=1, max_length=MAX_PARAMS)]],
                       Field(min_length=1, max_length=MAX_SAMPLES)]],
        Field(min_length=1, max_length=MAX_SEEDS),
    ]
    item_scores: Annotated[
        dict[Slug, Annotated[list[Annotated[list[float], Field(max_length=MAX_SAMPLES)]],
                             Field(max_length=MAX_SEEDS)]],
        Field(max_length=16),
    ] = {}
    curves: Annotated[
        list[Annotated[list[Annotated[list[float], Field(max_length=1000)]],
                       Field(max_length=MAX_SAMPLES)]],
        Field(max_length=MAX_SEEDS),
    ] = []


class TaskSubmission(_Strict):
    """One task of a submission."""

    task: Slug
    task_version: Annotated[int, Field(ge=1)]
    type: TaskType
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=MAX_SEEDS)]
    claimed: Annotated[dict[Slug, float], Field(max_length=16)] = {}
    items: Annotated[PropertyItems | RowItems | SampleItems, Field(discriminator="kind")]

    def outputs(self) -> TaskOutputs:
        """The task's items as the evaluators re-score them (no copies of the lists)."""
        i = self.items
        items: Items
        if isinstance(i, PropertyItems):
            items = CheckpointPredictions(model_id=i.model_id, epoch=i.epoch,
                                          predictions=i.predictions)
        elif isinstance(i, RowItems):
            items = RowPredictions(row_id=i.row_id, predictions=i.predictions)
        else:
            items = WeightSamples(architecture=i.architecture, activation=i.activation,
                                  weights=i.weights, item_scores=i.item_scores,
                                  curves=i.curves)
        return TaskOutputs(task=self.task, seeds=self.seeds, items=items)


def items_from_outputs(items: Items) -> PropertyItems | RowItems | SampleItems:
    """An evaluator's re-scorable items (:meth:`Evaluator.rescorable_items`) as submission
    items."""
    if isinstance(items, CheckpointPredictions):
        return PropertyItems(kind="property", model_id=list(items.model_id),
                             epoch=list(items.epoch),
                             predictions=[list(p) for p in items.predictions])
    if isinstance(items, RowPredictions):
        return RowItems(kind="rows", row_id=list(items.row_id),
                        predictions=[list(p) for p in items.predictions])
    return SampleItems(kind="samples", architecture=items.architecture,
                       activation=items.activation,
                       weights=[[list(v) for v in w] for w in items.weights],
                       item_scores={k: [list(x) for x in v] for k, v in items.item_scores.items()},
                       curves=[[list(c) for c in s] for s in items.curves])


class Submission(_Strict):
    """A leaderboard submission (format version 1)."""

    format: Literal["modelzoo-leaderboard-submission"] = SUBMISSION_FORMAT
    format_version: Literal[1] = FORMAT_VERSION
    created: _dt.datetime
    toolkit_version: Version
    method: MethodCard
    zoo: ZooPin
    suite: Slug
    tasks: Annotated[list[TaskSubmission], Field(min_length=1, max_length=MAX_TASKS)]


class TaskScore(_Strict):
    """Recomputed scores of one task (test split, over the submission's seeds)."""

    task: Slug
    task_version: int
    type: TaskType
    main_score: Slug
    split: Literal["test"] = "test"
    seeds: list[int]
    scores: dict[Slug, ScoreStat]

    @property
    def main(self) -> ScoreStat:
        """The ranking score."""
        return self.scores[self.main_score]


class Verification(_Strict):
    """The board maintainer re-ran the method on the label-free view and its scores matched.

    Attributes:
        method: the ``module:object`` (or registered name) that was re-run.
        verified: when.
        toolkit_version: the board's toolkit version at the re-run.
        max_abs_diff: largest |re-run score - recorded score| over tasks and metrics.
        tolerance: the largest difference accepted.
    """

    method: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    verified: _dt.datetime
    toolkit_version: str
    max_abs_diff: float
    tolerance: float


class BoardEntry(_Strict):
    """One accepted submission as recorded on a board (``entries/<id>.json``, private).

    Attributes:
        scores: the board's own scores, recomputed from the predictions, on every scored
            row (open boards: what is ranked and shown; held-out boards: kept for audits and
            ``verify``, never shown).
        feedback: held-out boards: the scores on the feedback half of the rows, the only
            ones the submitter and the page see at once.
        ranking: held-out boards: the scores on the ranking half, which decide the rank;
            private (a release publishes at most their average, through the Ladder).
        claimed: the scores the submission claimed (never used for ranking).
        discrepancies: claims that differ from the recomputed scores beyond the tolerance.
    """

    entry_format: Literal[1] = FORMAT_VERSION
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=128)]
    added: _dt.datetime
    submission_sha256: Sha256
    predictions_sha256: Sha256
    method: MethodCard
    zoo: ZooPin
    suite: Slug
    submission_created: _dt.datetime
    submission_toolkit_version: Version
    board_toolkit_version: str
    scores: list[TaskScore]
    feedback: list[TaskScore] = []
    ranking: list[TaskScore] = []
    claimed: dict[str, dict[str, float]]
    discrepancies: list[str] = []
    verification: Verification | None = None

    @property
    def verified(self) -> bool:
        """Whether the maintainer re-ran the method and reproduced the scores."""
        return self.verification is not None

    def score(self, task: str) -> TaskScore | None:
        """The recomputed scores of ``task`` (None if the entry has none)."""
        return next((s for s in self.scores if s.task == task), None)

    @property
    def shown(self) -> list[TaskScore]:
        """The scores a page may show at once: the feedback half's (held-out boards), else
        all of them (open boards)."""
        return self.feedback or self.scores


class IndexRecord(_Strict):
    """A line of the board index: what is needed to find an entry and reject duplicates."""

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=128)]
    file: Annotated[str, StringConstraints(pattern=r"^entries/[a-z0-9][a-z0-9._-]*\.json$")]
    submission_sha256: Sha256
    predictions_sha256: Sha256
    method: Slug
    method_version: Version
    added: _dt.datetime
    authors: Annotated[list[Name], Field(max_length=32)] = []


class BoardRules(_Strict):
    """What a held-out board does against adaptive submissions
    (:mod:`benchmarks.leaderboard.ranking`), fixed at ``bench leaderboard init``.

    Attributes:
        ranking_fraction: share of the test models (all their checkpoints) whose rows decide
            the rank; the others' rows give the feedback scores returned at once. The split
            is drawn once from the board's secret key.
        ladder_margin: a release publishes an entry's ranking score only if it beats the
            board's published best by more than this, rounded to a multiple of it.
        max_entries_per_author: entries one author name may add between two releases.
    """

    ranking_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5
    ladder_margin: Annotated[float, Field(gt=0, le=1)] = 0.01
    max_entries_per_author: Annotated[int, Field(ge=1)] = 5


class LadderStep(_Strict):
    """What a release made public of one entry.

    Attributes:
        id: the entry.
        published: its ranking score rounded to the margin, if it beat the best by more
            than the margin; else None (the page says "not above the best").
        best: the board's published best after this entry (None: nothing published yet).
    """

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=128)]
    published: float | None
    best: float | None


class Release(_Strict):
    """One ``bench leaderboard release``: the entries added since the previous one, in the
    order they were added, through the Ladder."""

    number: Annotated[int, Field(ge=1)]
    released: _dt.datetime
    margin: float
    steps: list[LadderStep]

    @property
    def best(self) -> float | None:
        """The published best after this release (None: nothing published yet)."""
        return self.steps[-1].best if self.steps else None


class HeldOutInfo(_Strict):
    """How a held-out board was made (``bench leaderboard init``); kept in ``board.json``.

    Attributes:
        zoo: folder (inside the board) of the private held-out zoo, with its labels.
        view: pin of the published label-free view; submissions must name it.
        public_zoo: pin of the public zoo of the same recipe (submissions made on it are
            refused with a pointer to the view); None if init was not given it.
        recipe: name of the recipe the held-out zoo was built from.
        seed_offset: added to the recipe's seeds, or None (random secret seeds).
        seeds: the held-out zoo's seeds (private: with them the zoo can be rebuilt).
        test_fraction: share of held-out models in the test split (the scored rows).
        rules: the feedback / ranking split, the Ladder's margin and the per-author limit.
    """

    zoo: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]
    view: ZooPin
    public_zoo: ZooPin | None = None
    recipe: Name
    seed_offset: int | None = None
    seeds: list[int] = []
    test_fraction: float
    rules: BoardRules = BoardRules()


class BoardIndex(_Strict):
    """``board.json``: the list of entries (the commit point of every change).

    ``heldout`` is set on boards made with ``bench leaderboard init`` (they score a private
    held-out zoo through its label-free view); without it the board is *open*: it scores a
    zoo given to ``add``, whose labels may be public. ``releases`` (held-out boards) records
    what each ``bench leaderboard release`` published.
    """

    format: Literal["modelzoo-leaderboard"] = BOARD_FORMAT
    format_version: Literal[1] = FORMAT_VERSION
    zoo: ZooPin | None = None
    suite: Slug | None = None
    heldout: HeldOutInfo | None = None
    entries: list[IndexRecord] = []
    releases: list[Release] = []

    def released(self) -> dict[str, tuple[int, LadderStep]]:
        """Entry id -> (release number, what it published), for released entries."""
        return {step.id: (r.number, step) for r in self.releases for step in r.steps}


def json_bytes(model: BaseModel | dict[str, Any], *, compact: bool = False) -> bytes:
    """JSON of a model (or dict) with a trailing newline: indented, or ``compact`` (no
    whitespace; for submissions, whose weight lists would grow a line per number)."""
    import json

    data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    text = (json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            if compact else json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False))
    return (text + "\n").encode()
