"""Declarative task metadata (MTEB style): what is scored, on which pinned zoo, and how.

A task is data, not code: a :class:`TaskMetadata` instance declared in a ~20-line module
under ``benchmarks/tasks/`` and registered in :data:`benchmarks.registry.TASKS`. The runner
(:mod:`benchmarks.runner`) interprets it with the evaluator of its ``type``
(:mod:`benchmarks.evaluators`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelzoo.errors import UnknownNameError

#: A task type: the name of a registered evaluator (``regression``, ``classification``,
#: ``initialization``, ``generation`` built in; see :mod:`benchmarks.evaluators`). The metrics
#: and targets a type allows are its evaluator's ``metrics`` / ``targets``.
TaskType = str

_NAME = r"^[a-z0-9][a-z0-9._-]*$"


class ZooFacts(BaseModel):
    """Facts about a zoo that can be pinned before anyone has its content hash: for a zoo
    imported from public files (``zoo import``), what the files are known to hold.

    Attributes:
        format: the import format (``zoo.json`` ``recipe.format``).
        split_protocol: the split protocol of the import.
        split_file_sha256: sha256 of the published split file the protocol read.
        num_rows: checkpoints in the zoo.
        num_models: models in the zoo.
        n_params: architecture key -> parameters (the layout's size).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str | None = None
    split_protocol: str | None = None
    split_file_sha256: str | None = None
    num_rows: int | None = None
    num_models: int | None = None
    n_params: dict[str, int] | None = None


class ZooRef(BaseModel):
    """The zoo a task is pinned to (like a dataset revision in MTEB).

    Attributes:
        name: zoo name as in its ``zoo.json``.
        version: zoo version (semantic version string); pinned.
        content_hash: optionally pin the exact content (``zoo.json`` ``content_hash``).
        expect: facts the zoo must show (row counts, layout, split file), checked with the
            pin; for imported zoos whose content hash nobody has measured yet.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    content_hash: str | None = None
    expect: ZooFacts | None = None

    @property
    def label(self) -> str:
        """``name-vVERSION``, used in result paths."""
        return f"{self.name}-v{self.version}"


class SplitScheme(BaseModel):
    """Which zoo split is used for what. Splits come from the zoo's ``split`` column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fit: Literal["train"] = "train"
    select: Literal["validation"] = "validation"
    score: Literal["test"] = "test"


class FinetuneSpec(BaseModel):
    """How initialization and generation tasks build and train target models.

    Attributes:
        source: dataset to fine-tune / evaluate on; ``None`` means the zoo's own source.
        epochs: fine-tuning epochs (accuracy is recorded after each, and before the first).
        n_models: weight vectors drawn from the provider per seed.
        lr: Adam learning rate.
        batch_size: mini-batch size.
        activation: activation of the target models; ``None`` = that of the zoo's best
            train-split checkpoint by ``val_acc`` (providers return weights for it).
        novelty_threshold: generation only; a sample is *novel* when its L2 distance to the
            nearest training checkpoint exceeds this fraction of the median nearest-neighbour
            distance between distinct training models.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = None
    epochs: int = Field(3, ge=0)
    n_models: int = Field(4, ge=1)
    lr: float = Field(3e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    activation: str | None = None
    novelty_threshold: float = Field(0.1, ge=0)


class RowFilter(BaseModel):
    """Rows of a heterogeneous zoo a task keeps, in every split (``None``: any value).

    Attributes:
        architecture: keep rows of this architecture only.
        source: keep rows trained on this source only.
        epoch: keep checkpoints of this epoch only (e.g. step 86 of the CTC zoos).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: str | None = None
    source: str | None = None
    epoch: int | None = None


class HoldOut(BaseModel):
    """Leave one group out: the head is fitted and selected on the train / validation rows of
    every *other* value of ``by``, and scored on the test rows of ``value`` only.

    Attributes:
        by: the zoo column that defines the groups.
        value: the held-out group.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: Literal["architecture", "source"]
    value: str


class TaskMetadata(BaseModel):
    """One benchmark task.

    Attributes:
        name: unique task name (lower case, digits, ``.-_``).
        description: one or two sentences for ``bench ls`` and result tables.
        type: a registered task type (its evaluator): regression | classification (property
            prediction), initialization, generation, or one a plugin adds.
        zoo: the pinned zoo.
        target: the zoo column predicted (property tasks) or ``"weights"`` (init / generation).
        splits: fit on train, select on validation, score on test.
        metrics: reported metrics; all must be among the evaluator's ``metrics``.
        main_score: the metric used to rank methods (one of ``metrics``).
        finetune: settings of initialization / generation tasks.
        rows: keep only these rows of the zoo (e.g. one architecture of a heterogeneous zoo).
        holdout: leave-one-group-out property task (see :class:`HoldOut`).
        version: task revision; bump when the declaration changes what is measured.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    description: str
    type: TaskType
    zoo: ZooRef
    target: str
    splits: SplitScheme = SplitScheme()
    metrics: tuple[str, ...]
    main_score: str
    finetune: FinetuneSpec | None = None
    rows: RowFilter | None = None
    holdout: HoldOut | None = None
    version: int = 1

    @model_validator(mode="after")
    def _check(self) -> TaskMetadata:
        from benchmarks.registry import EVALUATORS  # registers the built-in evaluators

        try:
            evaluator = EVALUATORS.get(self.type)
        except UnknownNameError as e:
            raise ValueError(str(e).strip("\"'")) from None
        bad = [m for m in self.metrics if m not in evaluator.metrics]
        if bad:
            raise ValueError(
                f"metrics {bad} are not valid for {self.type} tasks ({evaluator.metrics})")
        if self.main_score not in self.metrics:
            raise ValueError(f"main_score {self.main_score!r} must be one of metrics")
        evaluator.validate(self)
        if self.holdout is not None and self.finetune is not None:
            raise ValueError("holdout applies to property tasks only")
        if self.holdout is not None and self.rows is not None and \
                getattr(self.rows, self.holdout.by) is not None:
            raise ValueError(f"rows fixes the {self.holdout.by} that holdout leaves out")
        return self

    @property
    def is_property(self) -> bool:
        """Whether this is a property-prediction task (per-checkpoint predictions)."""
        from benchmarks.registry import EVALUATORS

        return EVALUATORS.get(self.type).items == "property"


class PublishedScore(BaseModel):
    """A number a paper reports for one of a suite's tasks, to put beside ours.

    Attributes:
        task: the task it corresponds to.
        metric: the task metric it is.
        method: the paper's method name.
        ours: our method it compares with (``bench run --method``), if any.
        value: the published value (fractions, not percent).
        source: paper, table and setting.
        verified: checked against the paper itself; otherwise it is "as quoted, unverified".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    metric: str
    method: str
    ours: str | None = None
    value: float
    source: str
    verified: bool = False

    @property
    def status(self) -> str:
        """``verified`` or ``as quoted, unverified``."""
        return "verified" if self.verified else "as quoted, unverified"


class Suite(BaseModel):
    """A named, versioned list of tasks (e.g. ``digits-v1``).

    Attributes:
        name: family name (``digits``).
        version: integer version; the registry key is ``{name}-v{version}``.
        description: one line.
        tasks: task names, in order.
        published: published numbers for its tasks (put beside ours by ``bench table``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    version: int = Field(ge=1)
    description: str
    tasks: tuple[str, ...] = Field(min_length=1)
    published: tuple[PublishedScore, ...] = ()

    @property
    def key(self) -> str:
        """Registry key, ``name-vN``."""
        return f"{self.name}-v{self.version}"
