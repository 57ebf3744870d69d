"""Evaluators: a task type is one class; a new one, declared here, runs end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from benchmarks import evaluate
from benchmarks.evaluators import Evaluator, SeedContext, SeedRun
from benchmarks.registry import EVALUATORS, TASKS, register_evaluator, register_task
from benchmarks.results import ConfidenceInterval, load_results
from benchmarks.scoring import BootstrapSpec, sample_bootstrap
from benchmarks.table import results_frames, to_markdown
from benchmarks.tasks.metadata import TaskMetadata, ZooRef
from tests.bench_fixtures import ZOO_NAME, ZOO_VERSION

pytestmark = pytest.mark.usefixtures("single_thread")


class RetrievalEvaluator(Evaluator):
    """A new task type: is a test checkpoint's nearest neighbour (in the method's feature
    space) a checkpoint of the same model?"""

    type = "test-retrieval"
    metrics = ("same_model_at_1",)
    needs = ("features",)

    def run_seed(self, ctx: SeedContext) -> SeedRun:
        zoo, raw = ctx.zoo, ctx.raw
        x = np.asarray(ctx.method.features(zoo.splits["test"], zoo.manifest), dtype=np.float64)
        x = (x - x.mean(0)) / (x.std(0) + 1e-12)
        ids = zoo.column("test", "model_id")
        dist = ((x[:, None] - x[None]) ** 2).sum(-1)
        np.fill_diagonal(dist, np.inf)
        hits = (ids[dist.argmin(1)] == ids).astype(np.float64)
        if raw is not None:
            raw["hits"] = hits
        return SeedRun(scores={"test": {"same_model_at_1": float(hits.mean())}},
                       details={"items": len(hits)})

    def intervals(self, task: TaskMetadata, raw: list[dict[str, Any]],
                  spec: BootstrapSpec) -> dict[str, dict[str, ConfidenceInterval]]:
        return {"test": {"same_model_at_1": sample_bootstrap(
            per_sample=[r["hits"] for r in raw], spec=spec)}}


TASK = dict(name="test-digits-retrieval", description="Nearest-neighbour model retrieval.",
            type="test-retrieval", zoo=ZooRef(name=ZOO_NAME, version=ZOO_VERSION),
            target="model_id", metrics=("same_model_at_1",), main_score="same_model_at_1")


@pytest.fixture
def retrieval() -> Iterator[TaskMetadata]:
    """Register the type and one task of it; unregister both afterwards (the registries are
    process-wide)."""
    register_evaluator(RetrievalEvaluator)
    try:
        yield register_task(TaskMetadata(**TASK))
    finally:
        EVALUATORS._items.pop(RetrievalEvaluator.type, None)
        TASKS._items.pop(TASK["name"], None)


def test_unknown_type_is_refused_with_suggestions() -> None:
    with pytest.raises(ValidationError, match="unknown task type 'regresion'.*'regression'"):
        TaskMetadata(**{**TASK, "type": "regresion", "metrics": ("r2",), "main_score": "r2"})
    with pytest.raises(ValidationError, match="unknown task type 'test-retrieval'"):
        TaskMetadata(**TASK)  # not registered outside the fixture


def test_new_task_type_runs_end_to_end(retrieval: TaskMetadata, var_zoo: Path,
                                       tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not valid for test-retrieval tasks"):
        TaskMetadata(**{**TASK, "metrics": ("r2",), "main_score": "r2"})
    assert not retrieval.is_property  # not a per-checkpoint prediction task of a board
    (res,) = evaluate(tasks=[retrieval.name], method="weight-stats-linear", zoo=var_zoo,
                      out=tmp_path, seeds=2)
    main = res.main_score
    assert res.task.type == "test-retrieval" and main.metric == "same_model_at_1"
    assert 0.0 <= main.mean <= 1.0 and main.std == 0.0  # deterministic features
    assert main.ci is not None and main.ci.unit == "sample" and main.ci.n_resamples == 1000
    assert res.details["per_seed"] == [{"items": 3 * 4}] * 2  # 3 test models x 4 checkpoints
    (loaded,) = load_results(tmp_path)  # the result file validates and reads back
    assert loaded.main_score == main
    table = to_markdown(results_frames([loaded]))
    assert "test-digits-retrieval (same_model_at_1)" in table
    with pytest.raises(Exception, match="cannot do test-retrieval task"):  # needs features
        evaluate(tasks=[retrieval.name], method="chance", zoo=var_zoo, seeds=1)
