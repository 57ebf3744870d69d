"""Declarative benchmark tasks; importing this package registers every built-in task."""

from benchmarks.tasks import (  # noqa: F401  (each module registers its task)
    digits_epoch,
    digits_generation,
    digits_ggap,
    digits_hp_activation,
    digits_hp_init,
    digits_hp_optimizer,
    digits_init_same,
    digits_init_transfer,
    digits_test_acc,
)
from benchmarks.tasks import suites as _suites  # noqa: F401  (after the tasks)
from benchmarks.tasks.metadata import (
    FinetuneSpec,
    SplitScheme,
    Suite,
    TaskMetadata,
    TaskType,
    ZooRef,
)

__all__ = ["FinetuneSpec", "SplitScheme", "Suite", "TaskMetadata", "TaskType", "ZooRef"]
