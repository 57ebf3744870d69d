"""The standard task set of one canonical zoo, declared from a few facts about the zoo.

Every canonical zoo gets the same property tasks (regress test accuracy, generalization gap
and epoch; classify every hyperparameter its card varies) plus the weight tasks that make sense
for it (initialization on its own source, generation). Task names are ``<zoo>-<what>``, e.g.
``mnist-cnn_s-test-acc`` or ``ctc-cifar10-train-fraction``. The per-card modules
(:mod:`benchmarks.tasks.model_zoos`, :mod:`benchmarks.tasks.ctc`,
:mod:`benchmarks.tasks.resnet18`) call :func:`register_zoo_tasks` once per zoo.
"""

from __future__ import annotations

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import FinetuneSpec, TaskMetadata, ZooRef

#: Regression targets of every zoo: (column, name suffix, description).
REGRESSION: tuple[tuple[str, str, str], ...] = (
    ("test_acc", "test-acc", "Regress each checkpoint's test accuracy from its weights."),
    ("ggap", "ggap", "Regress each checkpoint's generalization gap (train - test accuracy)."),
    ("epoch", "epoch", "Regress the epoch at which each checkpoint was saved."),
)


def _slug(column: str) -> str:
    return column.replace("_", "-")


def zoo_tasks(
    zoo: ZooRef,
    *,
    about: str,
    classify: tuple[str, ...],
    init: FinetuneSpec | None,
    generation: FinetuneSpec | None,
) -> tuple[TaskMetadata, ...]:
    """The standard tasks of ``zoo`` (not registered).

    Args:
        zoo: the pinned zoo; its name prefixes every task name.
        about: what the zoo is, for descriptions (e.g. ``"CNN-s on MNIST"``).
        classify: hyperparameter columns the zoo varies (one classification task each).
        init: fine-tuning spec of the ``init-same`` task (on the zoo's own source), or None.
        generation: spec of the ``generation`` task, or None.
    """
    tasks = [
        TaskMetadata(name=f"{zoo.name}-{slug}", description=f"{desc[:-1]} ({about}).",
                     type="regression", zoo=zoo, target=col, metrics=("kendall_tau", "r2"),
                     main_score="kendall_tau")
        for col, slug, desc in REGRESSION
    ]
    tasks += [
        TaskMetadata(name=f"{zoo.name}-{_slug(col)}", type="classification", zoo=zoo,
                     description=f"Classify each checkpoint's {col} from its weights ({about}).",
                     target=col, metrics=("accuracy", "balanced_accuracy"),
                     main_score="accuracy")
        for col in classify
    ]
    if init is not None:
        tasks.append(TaskMetadata(
            name=f"{zoo.name}-init-same", type="initialization", zoo=zoo, target="weights",
            description=f"Fine-tune models initialised from the method's weights on the zoo's "
            f"own source ({about}); area under the test-accuracy-per-epoch curve.",
            metrics=("auc", "final_accuracy", "zero_shot_accuracy"), main_score="auc",
            finetune=init))
    if generation is not None:
        tasks.append(TaskMetadata(
            name=f"{zoo.name}-generation", type="generation", zoo=zoo, target="weights",
            description=f"Zero-shot accuracy of generated models as percentiles of the zoo's "
            f"test-split models, counting only novel samples ({about}).",
            metrics=("novel_percentile", "zero_shot_accuracy", "percentile", "novelty",
                     "novel_fraction"),
            main_score="novel_percentile", finetune=generation))
    return tuple(tasks)


def register_zoo_tasks(zoo: ZooRef, **kwargs: object) -> tuple[TaskMetadata, ...]:
    """Register :func:`zoo_tasks` of ``zoo`` and return them (same keyword arguments)."""
    return tuple(register_task(t) for t in zoo_tasks(zoo, **kwargs))  # type: ignore[arg-type]
