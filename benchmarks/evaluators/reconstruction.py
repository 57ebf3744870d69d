"""Reconstruction tasks: does a method's autoencoder keep a network working?

The last checkpoint of every healthy test-split model is passed through the method's
``reconstruct`` (encode, then decode: a weight vector in, a weight vector out, per
architecture) and both the original and the decoded network are scored on the test images of
the model's source. Scores, over test models:

* ``accuracy_ratio`` (main score): the mean per-model ratio decoded / original test accuracy:
  1.0 for a perfect autoencoder, about ``chance / original`` for one that destroys the
  function. A model whose original accuracy is 0 counts 0.
* ``decoded_accuracy`` and ``original_accuracy``: the two means.
* ``weight_error``: the mean per-model relative L2 error ``|w' - w| / |w|`` of the weights.

Intervals resample the seeds, then the test models of each seed
(:func:`benchmarks.scoring.sample_bootstrap`, the interval over test models). A method's
reconstruction never sees the test images; the original accuracies are recomputed with the
same code as the decoded ones (not read from the zoo's ``test_acc`` column), so an identity
autoencoder scores exactly 1.0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.data import load_image_data
from benchmarks.errors import MethodError, TaskNotApplicableError
from benchmarks.evaluators.base import Evaluator, SeedContext, SeedRun
from benchmarks.evaluators.generation import last_rows
from benchmarks.finetune import accuracy_of, model_from_weights
from benchmarks.methods.base import TargetModel
from benchmarks.registry import register_evaluator
from benchmarks.results import ConfidenceInterval
from benchmarks.scoring import BootstrapSpec, sample_bootstrap
from modelzoo.storage import weights_tensor

if TYPE_CHECKING:
    from benchmarks.tasks.metadata import TaskMetadata
    from benchmarks.zoo import EvalZoo


@register_evaluator
class ReconstructionEvaluator(Evaluator):
    """Test accuracy of decoded test models relative to the originals."""

    type = "reconstruction"
    metrics = ("accuracy_ratio", "decoded_accuracy", "original_accuracy", "weight_error")
    needs = ("reconstruct",)
    order = 4

    def validate(self, task: TaskMetadata) -> None:
        if task.target != "weights":
            raise ValueError("reconstruction tasks have target 'weights'")
        if task.finetune is not None:
            raise ValueError("reconstruction tasks take no finetune spec (nothing is trained)")

    def check_applicable(self, task: TaskMetadata, zoo: EvalZoo) -> None:
        if not len(zoo.splits["test"]):
            raise TaskNotApplicableError(
                f"zoo {zoo.manifest.name} has no healthy test-split checkpoints, which "
                f"{task.name} reconstructs")

    def run_seed(self, ctx: SeedContext) -> SeedRun:
        zoo, method = ctx.zoo, ctx.method
        ids, epochs = zoo.column("test", "model_id"), zoo.column("test", "epoch")
        arch, act = zoo.column("test", "architecture"), zoo.column("test", "activation")
        source = zoo.column("test", "source")
        rows = last_rows(ids, epochs, np.ones(len(ids), bool))
        weights = weights_tensor(zoo.splits["test"])
        orig, dec, err = np.zeros(len(rows)), np.zeros(len(rows)), np.zeros(len(rows))
        decoded_all: dict[int, np.ndarray] = {}
        for a in sorted(set(arch[rows].tolist())):
            mine = rows[arch[rows] == a]
            w = weights[mine].numpy().astype(np.float32)
            out = np.asarray(method.reconstruct(zoo=zoo.path, manifest=zoo.manifest,
                                                architecture=a, weights=w, seed=ctx.seed),
                             dtype=np.float32)
            if out.shape != w.shape:
                raise MethodError(f"method {method.name!r}: reconstruct() returned shape "
                                  f"{out.shape} for {w.shape} weights of {a}")
            for r, w0, w1 in zip(mine, w, out, strict=True):
                decoded_all[int(r)] = w1
                target = TargetModel(a, str(act[r]), int(w0.shape[0]))
                data = load_image_data(str(source[r]), zoo.data_dir)
                k = int(np.searchsorted(rows, r))
                orig[k] = accuracy_of(model_from_weights(zoo.manifest, target, w0, data)[0],
                                      data.x_test, data.y_test)
                dec[k] = accuracy_of(model_from_weights(zoo.manifest, target, w1, data)[0],
                                     data.x_test, data.y_test)
                err[k] = float(np.linalg.norm(w1 - w0) / max(np.linalg.norm(w0), 1e-12))
        ratio = np.where(orig > 0, dec / np.maximum(orig, 1e-12), 0.0)
        scores = {"accuracy_ratio": float(ratio.mean()), "decoded_accuracy": float(dec.mean()),
                  "original_accuracy": float(orig.mean()), "weight_error": float(err.mean())}
        details = {"models": len(rows), "architectures": sorted(set(arch[rows].tolist())),
                   "sources": sorted(set(source[rows].tolist())),
                   "epochs": sorted({int(e) for e in epochs[rows]})}
        if ctx.raw is not None:  # per-model scores, for the intervals over test models
            ctx.raw.update(accuracy_ratio=ratio, decoded_accuracy=dec, original_accuracy=orig,
                           weight_error=err)
        if ctx.items is not None:  # per-model decoded weights and accuracies
            ctx.items.update(weights=np.stack([decoded_all[int(r)] for r in rows]),
                             model_id=[str(ids[r]) for r in rows],
                             epoch=[int(epochs[r]) for r in rows],
                             original_accuracy=orig.tolist(), decoded_accuracy=dec.tolist())
        return SeedRun(scores={"test": scores}, details=details)

    def intervals(
        self, task: TaskMetadata, raw: list[dict[str, Any]], spec: BootstrapSpec
    ) -> dict[str, dict[str, ConfidenceInterval]]:
        return {"test": {m: sample_bootstrap(per_sample=[r[m] for r in raw], spec=spec,
                                              unit="model")
                         for m in task.metrics}}
