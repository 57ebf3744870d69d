"""Declarative tasks, suites and the registries behind ``bench ls``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import benchmarks
from benchmarks.registry import EVALUATORS, METHODS, SUITES, TASKS, register_suite
from benchmarks.tasks.metadata import (
    FinetuneSpec,
    Suite,
    TaskMetadata,
    ZooRef,
)
from modelzoo.errors import UnknownNameError

ZOO = ZooRef(name="z", version="1.0.0")
BASE = dict(name="t", description="d", type="regression", zoo=ZOO, target="test_acc",
            metrics=("kendall_tau", "r2"), main_score="kendall_tau")


@pytest.mark.parametrize("name", TASKS.names())
def test_registered_task_is_consistent(name: str) -> None:
    task = TASKS.get(name)
    assert task.name == name
    assert set(task.metrics) <= set(EVALUATORS.get(task.type).metrics)
    assert task.main_score in task.metrics
    assert task.zoo.name and task.zoo.version  # pinned
    assert (task.finetune is not None) == (task.type in ("initialization", "generation"))
    # a declaration round-trips through JSON (it is data, not code)
    assert TaskMetadata.model_validate_json(task.model_dump_json()) == task


@pytest.mark.parametrize("key", SUITES.names())
def test_suites_are_versioned_and_resolve(key: str) -> None:
    suite = SUITES.get(key)
    assert key == f"{suite.name}-v{suite.version}"
    assert all(t in TASKS for t in suite.tasks)


def test_digits_suite_covers_every_task_type_and_target() -> None:
    tasks = [TASKS.get(t) for t in SUITES.get("digits-v1").tasks]
    v2 = [TASKS.get(t) for t in SUITES.get("digits-v2").tasks]
    assert {t.type for t in tasks} == set(EVALUATORS.names()) - {"reconstruction"}
    assert {t.type for t in v2} == set(EVALUATORS.names())  # reconstruction: digits-v2
    targets = {t.target for t in tasks if t.is_property}
    assert {"test_acc", "ggap", "epoch", "activation", "init", "optimizer"} <= targets
    regression = [t for t in tasks if t.type == "regression"]
    assert all(t.main_score == "kendall_tau" for t in regression)


def test_metadata_forbids_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="extra"):
        TaskMetadata(**BASE, revision="abc")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"main_score": "accuracy"}, "main_score"),
        ({"metrics": ("accuracy",), "main_score": "accuracy"}, "not valid for regression"),
        ({"target": "activation"}, "regression target"),
        ({"type": "classification", "metrics": ("accuracy",), "main_score": "accuracy"},
         "classification target"),
        ({"type": "initialization", "target": "weights", "metrics": ("auc",),
          "main_score": "auc"}, "finetune"),
        ({"finetune": FinetuneSpec()}, "only initialization"),
        ({"name": "Bad Name"}, "pattern"),
    ],
)
def test_metadata_rejects_inconsistent_declarations(change: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        TaskMetadata(**{**BASE, **change})


def test_unknown_names_suggest_close_matches() -> None:
    with pytest.raises(UnknownNameError, match="digits-test-acc"):
        TASKS.get("digits-test-ac")
    with pytest.raises(UnknownNameError, match="digits-v2"):
        SUITES.get("digits-v3")
    with pytest.raises(UnknownNameError, match="weight-stats-gbt"):
        METHODS.get("weight-stats-gb")


def test_suite_with_unknown_task_is_rejected() -> None:
    with pytest.raises(UnknownNameError, match="(?i)did you mean"):
        register_suite(Suite(name="broken", version=1, description="x",
                             tasks=("digits-test-acc", "digits-ggapp")))
    assert "broken-v1" not in SUITES


def test_package_exports_api() -> None:
    assert callable(benchmarks.evaluate)
    assert benchmarks.TASKS is TASKS
