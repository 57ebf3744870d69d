"""``digits-hetero-v1``: the heterogeneous digits zoo (4 architectures x 2 sources).

Property tasks pooled over the whole zoo and per architecture; leave-one-architecture-out and
leave-one-source-out (head fitted and selected on the other groups' train / validation models,
scored on the held-out group's test models; :mod:`benchmarks.splits`); generation and
initialization per architecture, on digits (the weight providers and SANE draw from the
architecture's models of both sources; generation percentiles are against that architecture's
test models of both sources, each at its own source's test accuracy). Names:
``digits-hetero-<what>``, ``digits-hetero-<arch>-<what>``, ``digits-hetero-loao-<arch>-<what>``,
``digits-hetero-loso-<source>-<what>`` and ``digits-hetero-<arch>-loso-<source>-<what>``.
"""

from __future__ import annotations

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import FinetuneSpec, HoldOut, RowFilter, TaskMetadata
from benchmarks.tasks.zoos import DIGITS_HETERO

ARCHITECTURES = ("cnn_s", "cnn_l", "ctc_cnn", "mlp")
SOURCES = ("digits", "digits_transposed")
#: (target column, type): pooled and per-architecture property tasks.
PROPERTIES = (("test_acc", "regression"), ("ggap", "regression"), ("epoch", "regression"),
              ("activation", "classification"), ("optimizer", "classification"),
              ("lr", "classification"))
#: Targets of the per-architecture and the leave-one-out tasks.
PER_ARCH = (("test_acc", "regression"), ("ggap", "regression"), ("activation", "classification"))
HELD_OUT = (("test_acc", "regression"), ("activation", "classification"))


def _property(name: str, target: str, kind: str, about: str, *, rows: RowFilter | None = None,
              holdout: HoldOut | None = None) -> TaskMetadata:
    regression = kind == "regression"
    return register_task(TaskMetadata(
        name="-".join(p for p in ("digits-hetero", name, target.replace("_", "-")) if p),
        description=f"{'Regress' if regression else 'Classify'} each checkpoint's {target} "
        f"from its weights ({about}).",
        type=kind,  # type: ignore[arg-type]
        zoo=DIGITS_HETERO, target=target, rows=rows, holdout=holdout,
        metrics=("kendall_tau", "r2") if regression else ("accuracy", "balanced_accuracy"),
        main_score="kendall_tau" if regression else "accuracy"))


POOLED = tuple(_property("", t, k, "all architectures and sources pooled")
               for t, k in PROPERTIES)
PER_ARCHITECTURE = tuple(
    _property(a, t, k, f"{a} only", rows=RowFilter(architecture=a))
    for a in ARCHITECTURES for t, k in PER_ARCH)
LEAVE_ARCH_OUT = tuple(
    _property(f"loao-{a}", t, k, f"fitted on the other architectures, scored on {a}",
              holdout=HoldOut(by="architecture", value=a))
    for a in ARCHITECTURES for t, k in HELD_OUT)
LEAVE_SOURCE_OUT = tuple(
    _property(f"loso-{s}", t, k, f"fitted on the other source, scored on {s}",
              holdout=HoldOut(by="source", value=s))
    for s in SOURCES for t, k in HELD_OUT)
#: Per architecture, fitted on its digits models, scored on its transposed-digits ones: the
#: leave-one-source-out cell a per-architecture SANE can be compared on.
ARCH_LEAVE_SOURCE_OUT = tuple(
    _property(f"{a}-loso-digits_transposed", "test_acc", "regression",
              f"{a}, fitted on digits, scored on transposed digits",
              rows=RowFilter(architecture=a),
              holdout=HoldOut(by="source", value="digits_transposed"))
    for a in ARCHITECTURES)
GENERATIVE = tuple(
    register_task(t) for a in ARCHITECTURES for t in (
        TaskMetadata(
            name=f"digits-hetero-{a}-generation", type="generation", zoo=DIGITS_HETERO,
            target="weights", rows=RowFilter(architecture=a),
            description=f"Zero-shot accuracy on digits of generated {a} weights as "
            f"percentiles of the zoo's {a} test models, novel samples only.",
            metrics=("novel_percentile", "zero_shot_accuracy", "percentile", "novelty",
                     "novel_fraction"),
            main_score="novel_percentile",
            finetune=FinetuneSpec(source="digits", epochs=0, n_models=8,
                                  novelty_threshold=0.1)),
        TaskMetadata(
            name=f"digits-hetero-{a}-init", type="initialization", zoo=DIGITS_HETERO,
            target="weights", rows=RowFilter(architecture=a),
            description=f"Fine-tune {a} initialised from the method's weights on digits; area "
            "under the test-accuracy-per-epoch curve.",
            metrics=("auc", "final_accuracy", "zero_shot_accuracy"), main_score="auc",
            finetune=FinetuneSpec(source="digits", epochs=3, n_models=4))))

TASKS = (*POOLED, *PER_ARCHITECTURE, *LEAVE_ARCH_OUT, *LEAVE_SOURCE_OUT,
         *ARCH_LEAVE_SOURCE_OUT, *GENERATIVE)
