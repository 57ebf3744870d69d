"""Declarative benchmark tasks; importing this package registers every built-in task."""

from benchmarks.tasks import (  # noqa: F401  (each module registers its task(s))
    ctc,
    digits_epoch,
    digits_generation,
    digits_ggap,
    digits_hetero,
    digits_hp_activation,
    digits_hp_init,
    digits_hp_optimizer,
    digits_hyp_activation,
    digits_hyp_dropout,
    digits_hyp_epoch,
    digits_hyp_ggap,
    digits_hyp_init,
    digits_hyp_lr,
    digits_hyp_optimizer,
    digits_hyp_reconstruction,
    digits_hyp_test_acc,
    digits_hyp_weight_decay,
    digits_init_same,
    digits_init_transfer,
    digits_seed_generation,
    digits_seed_init_same,
    digits_seed_init_transfer,
    digits_seed_reconstruction,
    digits_test_acc,
    imported,
    model_zoos,
    resnet18,
)
from benchmarks.tasks import suites as _suites  # noqa: F401  (after the tasks)
from benchmarks.tasks.metadata import (
    FinetuneSpec,
    HoldOut,
    PublishedScore,
    RowFilter,
    SplitScheme,
    Suite,
    TaskMetadata,
    TaskType,
    ZooFacts,
    ZooRef,
)

__all__ = ["FinetuneSpec", "HoldOut", "PublishedScore", "RowFilter", "SplitScheme", "Suite",
           "TaskMetadata", "TaskType", "ZooFacts", "ZooRef"]
