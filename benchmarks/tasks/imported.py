"""Tasks on public zoos imported with ``zoo import``, with the published numbers to compare.

CTC Small CNN Zoo (``ctc-cifar10-gs-v1``, ``ctc-svhn-gs-v1``): test-accuracy prediction at
step 86 with NFN's split protocol (``zoo import ctc ... --splits nfn``), Kendall tau as in
NFN's Table 2 (verified: Zhou et al. 2023), and over every checkpoint.

Model Zoos (``modelzoos-mnist-cnn_s-v1``, ``modelzoos-svhn-cnn_s-v1``): the property tasks of
the SANE paper (test accuracy, epoch, generalization gap; R² of a linear probe there), and
zero-shot generation on MNIST. The SANE numbers are from secondary copies of its tables (as
quoted, unverified). The paper's SVHN and CIFAR-10 generation numbers have no task here: those
zoos train on 28 px (SVHN: grayscale) images, which no registered source provides.
"""

from __future__ import annotations

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import (
    FinetuneSpec,
    PublishedScore,
    RowFilter,
    TaskMetadata,
    ZooRef,
)
from benchmarks.tasks.zoos import (
    CTC_CIFAR10_GS,
    CTC_SVHN_GS,
    MODELZOOS_MNIST_CNN_S,
    MODELZOOS_SVHN_CNN_S,
)

NFN = "Zhou et al. 2023 (NFN), Table 2: Kendall tau, CTC zoo, step 86, NFN split"
SANE = "Schürholt et al. 2024 (SANE), Model Zoos CNN-s"
REGRESSION = {"type": "regression", "metrics": ("kendall_tau", "r2"), "main_score": "kendall_tau"}


def _regression(zoo: ZooRef, what: str, target: str, about: str,
                rows: RowFilter | None = None) -> TaskMetadata:
    return register_task(TaskMetadata(
        name=f"{zoo.name}-{what}", zoo=zoo, target=target, rows=rows,
        description=f"Regress each checkpoint's {target} from its weights ({about}).",
        **REGRESSION))  # type: ignore[arg-type]


def _ctc(zoo: ZooRef, about: str) -> tuple[TaskMetadata, ...]:
    return (
        _regression(zoo, "test-acc-86", "test_acc", f"{about}, step-86 checkpoints, as NFN",
                    RowFilter(epoch=86)),
        _regression(zoo, "test-acc", "test_acc", f"{about}, every checkpoint"),
    )


def _nfn(zoo: ZooRef, values: tuple[float, float, float]) -> tuple[PublishedScore, ...]:
    task = f"{zoo.name}-test-acc-86"
    return tuple(
        PublishedScore(task=task, metric="kendall_tau", method=m, ours=ours, value=v,
                       source=NFN, verified=True)
        for m, ours, v in zip(("StatNN", "NFN-NP", "NFN-HNP"), ("weight-stats-gbt", None, None),
                              values))


CTC_CIFAR10_GS_TASKS = _ctc(CTC_CIFAR10_GS, "CTC CNN on grayscale CIFAR-10")
CTC_SVHN_GS_TASKS = _ctc(CTC_SVHN_GS, "CTC CNN on grayscale SVHN")
CTC_CIFAR10_GS_PUBLISHED = _nfn(CTC_CIFAR10_GS, (0.915, 0.922, 0.934))
CTC_SVHN_GS_PUBLISHED = _nfn(CTC_SVHN_GS, (0.843, 0.856, 0.931))


def _modelzoos(zoo: ZooRef, about: str, generation: bool) -> tuple[TaskMetadata, ...]:
    tasks = [_regression(zoo, slug, target, about) for slug, target in
             (("test-acc", "test_acc"), ("epoch", "epoch"), ("ggap", "ggap"))]
    if generation:
        tasks.append(register_task(TaskMetadata(
            name=f"{zoo.name}-generation", type="generation", zoo=zoo, target="weights",
            description=f"Zero-shot accuracy of generated models as percentiles of the zoo's "
            f"test-split models, novel samples only ({about}).",
            metrics=("novel_percentile", "zero_shot_accuracy", "percentile", "novelty",
                     "novel_fraction"),
            main_score="novel_percentile",
            finetune=FinetuneSpec(source=None, epochs=0, n_models=16, novelty_threshold=0.1))))
    return tuple(tasks)


def _sane(zoo: ZooRef, rows: tuple[tuple[str, str, str, str | None, float], ...]
          ) -> tuple[PublishedScore, ...]:
    return tuple(PublishedScore(task=f"{zoo.name}-{t}", metric=metric, method=method, ours=ours,
                                value=v, source=SANE, verified=False)
                 for t, metric, method, ours, v in rows)


MODELZOOS_MNIST_CNN_S_TASKS = _modelzoos(MODELZOOS_MNIST_CNN_S, "Model Zoos CNN-s on MNIST",
                                         generation=True)
MODELZOOS_SVHN_CNN_S_TASKS = _modelzoos(MODELZOOS_SVHN_CNN_S, "Model Zoos CNN-s on SVHN",
                                        generation=False)
MODELZOOS_MNIST_CNN_S_PUBLISHED = _sane(MODELZOOS_MNIST_CNN_S, (
    ("test-acc", "r2", "s(W), linear probe", "weight-stats-linear", 0.987),
    ("test-acc", "r2", "SANE, linear probe", "sane", 0.978),
    ("epoch", "r2", "s(W), linear probe", "weight-stats-linear", 0.974),
    ("epoch", "r2", "SANE, linear probe", "sane", 0.958),
    ("ggap", "r2", "s(W), linear probe", "weight-stats-linear", 0.393),
    ("ggap", "r2", "SANE, linear probe", "sane", 0.402),
    ("generation", "zero_shot_accuracy", "S_KDE30, epoch 0", "weights-kde", 0.686),
    ("generation", "zero_shot_accuracy", "SANE subsampled, epoch 0", "sane", 0.867),
))
MODELZOOS_SVHN_CNN_S_PUBLISHED = _sane(MODELZOOS_SVHN_CNN_S, (
    ("test-acc", "r2", "s(W), linear probe", "weight-stats-linear", 0.985),
    ("test-acc", "r2", "SANE, linear probe", "sane", 0.991),
))

#: suite name -> (tasks, published numbers, description).
IMPORTED_SUITES = {
    "ctc-cifar10-gs": (CTC_CIFAR10_GS_TASKS, CTC_CIFAR10_GS_PUBLISHED,
                       "CTC Small CNN Zoo, grayscale CIFAR-10 (zoo import ctc, NFN split)."),
    "ctc-svhn-gs": (CTC_SVHN_GS_TASKS, CTC_SVHN_GS_PUBLISHED,
                    "CTC Small CNN Zoo, grayscale SVHN (zoo import ctc, NFN split)."),
    "modelzoos-mnist-cnn_s": (MODELZOOS_MNIST_CNN_S_TASKS, MODELZOOS_MNIST_CNN_S_PUBLISHED,
                              "Model Zoos CNN-s on MNIST (zoo import modelzoos): SANE's "
                              "property and generation tasks."),
    "modelzoos-svhn-cnn_s": (MODELZOOS_SVHN_CNN_S_TASKS, MODELZOOS_SVHN_CNN_S_PUBLISHED,
                             "Model Zoos CNN-s on SVHN (zoo import modelzoos): SANE's "
                             "property tasks."),
}
