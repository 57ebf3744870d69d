"""Named, versioned task suites."""

from benchmarks.registry import register_suite
from benchmarks.tasks import ctc, digits_hetero, imported, model_zoos, resnet18
from benchmarks.tasks.metadata import Suite, TaskMetadata

PROPERTIES = ("digits-test-acc", "digits-ggap", "digits-epoch", "digits-hp-activation",
              "digits-hp-init", "digits-hp-optimizer")

register_suite(
    Suite(name="digits-properties", version=1, tasks=PROPERTIES,
          description="Property prediction on the digits CNN-s zoo (6 targets).")
)
register_suite(
    Suite(name="digits", version=1,
          tasks=(*PROPERTIES, "digits-init-same", "digits-init-transfer", "digits-generation"),
          description="All digits CNN-s tasks: properties, initialization, generation.")
)

#: ``digits-v2``: the anchor-scale digits zoos. Properties on the hyperparameter zoo,
#: initialization and generation on the seed zoo, reconstruction on both; run it with both zoos
#: (``bench run --suite digits-v2 --zoo zoos/digits-cnn_s-hyp --zoo zoos/digits-cnn_s-seed``).
DIGITS_V2_PROPERTIES = ("digits-hyp-test-acc", "digits-hyp-ggap", "digits-hyp-epoch",
                        "digits-hyp-activation", "digits-hyp-init", "digits-hyp-optimizer",
                        "digits-hyp-lr", "digits-hyp-weight-decay", "digits-hyp-dropout")
register_suite(
    Suite(name="digits", version=2,
          tasks=(*DIGITS_V2_PROPERTIES, "digits-seed-init-same", "digits-seed-init-transfer",
                 "digits-seed-generation", "digits-seed-reconstruction",
                 "digits-hyp-reconstruction"),
          description="Anchor-scale digits zoos: properties on digits-cnn_s-hyp (1,280 "
          "models), initialization and generation on digits-cnn_s-seed (1,000 seeds), "
          "reconstruction on both.")
)

#: ``digits-hetero-v1``: the heterogeneous digits zoo (cards/digits-hetero.yaml): properties
#: pooled and per architecture, leave-one-architecture-out, leave-one-source-out, generation
#: and initialization per architecture.
register_suite(
    Suite(name="digits-hetero", version=1, tasks=tuple(t.name for t in digits_hetero.TASKS),
          description="Heterogeneous digits zoo (CNN-s, CNN-l, CTC CNN, MLP x digits, "
          "transposed digits): pooled, per-architecture and leave-one-out property tasks, "
          "generation and initialization per architecture.")
)

#: One suite per canonical zoo that needs local data: all of that zoo's tasks.
LOCAL_ZOO_SUITES: dict[str, tuple[TaskMetadata, ...]] = {
    "mnist-cnn_s": model_zoos.MNIST_CNN_S_TASKS,
    "svhn-cnn_l": model_zoos.SVHN_CNN_L_TASKS,
    "cifar10-cnn_l": model_zoos.CIFAR10_CNN_L_TASKS,
    "ctc-mnist": ctc.CTC_MNIST_TASKS,
    "ctc-cifar10": ctc.CTC_CIFAR10_TASKS,
    "resnet18-cifar10": resnet18.RESNET18_CIFAR10_TASKS,
    "resnet18-cifar100": resnet18.RESNET18_CIFAR100_TASKS,
    "resnet18-tiny_imagenet": resnet18.RESNET18_TINY_IMAGENET_TASKS,
}
for _zoo, _tasks in LOCAL_ZOO_SUITES.items():
    register_suite(Suite(name=_zoo, version=1, tasks=tuple(t.name for t in _tasks),
                         description=f"All tasks on the {_zoo} zoo (cards/{_zoo}.yaml; "
                         "needs its dataset locally)."))

#: Suites of public zoos imported with `zoo import` (benchmarks.tasks.imported), each with the
#: published numbers to put beside ours (`bench table RESULTS --published SUITE`).
for _zoo, (_tasks, _published, _about) in imported.IMPORTED_SUITES.items():
    register_suite(Suite(name=_zoo, version=1, tasks=tuple(t.name for t in _tasks),
                         description=_about, published=_published))
