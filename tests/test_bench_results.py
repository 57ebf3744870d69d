"""Result files: schema, published JSON Schema, migration, errors, tables."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from benchmarks.errors import ResultSchemaError
from benchmarks.results import (
    SCHEMA_FILE,
    SCHEMA_VERSION,
    ConfidenceInterval,
    MainScore,
    MethodInfo,
    ScoreStat,
    TaskInfo,
    TaskResult,
    ZooInfo,
    json_schema,
    json_schema_text,
    load_result,
    load_results,
    parse_result,
)
from benchmarks.table import results_frames, to_csv, to_markdown

V2_FILE = Path(__file__).with_name("data") / "bench_result_v2.json"


def make_result(
    method: str = "m", task: str = "t", mean: float = 0.5, *, seeds: int = 2,
    ci: bool = False,
) -> TaskResult:
    vals = [mean - 0.1, mean + 0.1] if seeds == 2 else [mean]
    interval = ConfidenceInterval(low=mean - 0.2, high=mean + 0.15, n_units=5,
                                  n_resamples=1000) if ci else None
    stat = ScoreStat.of(vals, ci=interval)
    return TaskResult(
        task=TaskInfo(name=task, type="regression", target="test_acc", main_score="kendall_tau"),
        zoo=ZooInfo(name="digits-cnn_s", version="1.0.0", content_hash="sha256:ab"),
        method=MethodInfo(name=method, meta={"version": 1}),
        scores={"test": {"kendall_tau": stat}},
        main_score=MainScore(metric="kendall_tau", split="test", mean=mean, std=stat.std,
                             ci=interval),
        seeds=list(range(seeds)),
        toolkit_version="0.1.0",
        timestamp=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
    )


def test_published_json_schema_is_up_to_date() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == json_schema_text(), (
        "run `python -m benchmarks.cli schema --out benchmarks/results.schema.json`"
    )
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert {"task", "zoo", "method", "scores", "main_score", "seeds", "toolkit_version",
            "git_hash", "timestamp"} <= set(schema["properties"])


def test_result_validates_against_published_schema_shape() -> None:
    data = json.loads(make_result().model_dump_json())
    schema = json_schema()
    assert set(data) <= set(schema["properties"])
    assert set(schema["required"]) <= set(data)


def test_score_stat_is_mean_and_population_std() -> None:
    s = ScoreStat.of([1.0, 2.0, 3.0])
    assert (s.mean, s.values) == (2.0, [1.0, 2.0, 3.0])
    assert s.std == pytest.approx((2 / 3) ** 0.5)
    assert str(s) == "2.000 ± 0.816"


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    r = make_result()
    path = r.save(tmp_path)
    assert path == tmp_path / "m" / "digits-cnn_s-v1.0.0" / "t.json"
    assert load_result(path) == r
    assert load_results(tmp_path) == [r]


def test_intervals_round_trip_including_undefined_ones(tmp_path: Path) -> None:
    r = make_result(ci=True)
    undefined = ConfidenceInterval(low=None, high=None, n_units=1, n_resamples=1000,
                                   reason="1 model(s) in the split: nothing to resample")
    r.scores["test"]["r2"] = ScoreStat.of([0.1], ci=undefined)
    assert load_result(r.save(tmp_path)) == r
    assert str(r.scores["test"]["kendall_tau"]) == "0.500 ± 0.100 [0.300, 0.650]"
    assert str(r.scores["test"]["r2"]) == "0.100 ± 0.000 [n/a]"


def test_version_2_file_is_migrated() -> None:
    data = json.loads(V2_FILE.read_text())
    assert data["schema_version"] == 2  # written by the toolkit before intervals existed
    r = load_result(V2_FILE)
    assert r.schema_version == SCHEMA_VERSION == 4
    assert r.main_score.mean == 0.82 and r.main_score.ci is None
    assert r.scores["test"]["r2"].values == [0.6, 0.66] and r.scores["test"]["r2"].ci is None
    assert r.details == data["details"] and r.git_hash == data["git_hash"]


V1 = {
    "schema_version": 1,
    "task": "digits-test-acc",
    "zoo": "digits-cnn_s@1.0.0",
    "zoo_hash": "sha256:cd",
    "method": "weight-stats-gbt",
    "scores": {"r2": 0.8, "kendall_tau": 0.7},
    "main_score": 0.7,
    "seed": 3,
    "toolkit_version": "0.0.9",
    "timestamp": "2024-12-01T10:00:00+00:00",
}


def test_old_schema_version_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps(V1))
    r = load_result(path)
    assert r.schema_version == SCHEMA_VERSION and r.main_score.ci is None
    assert (r.zoo.name, r.zoo.version, r.zoo.content_hash) == ("digits-cnn_s", "1.0.0",
                                                                "sha256:cd")
    assert r.main_score.metric == "kendall_tau" and r.main_score.mean == 0.7
    assert r.scores["test"]["r2"].values == [0.8] and r.seeds == [3]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({**V1, "schema_version": SCHEMA_VERSION + 1}, "newer than this toolkit"),
        ({"task": "x"}, "no schema_version"),
        ({**V1, "schema_version": "2"}, "positive integer"),
        ({k: v for k, v in V1.items() if k != "scores"}, "cannot migrate"),
        ({**json.loads(make_result().model_dump_json()), "unexpected": 1}, "does not match"),
    ],
)
def test_unreadable_versions_fail_clearly(data: dict, match: str) -> None:
    with pytest.raises(ResultSchemaError, match=match):
        parse_result(data)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ResultSchemaError, match="no result files"):
        load_results(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ResultSchemaError, match="cannot read"):
        load_result(bad)


def test_tables_compare_methods_per_task() -> None:
    results = [make_result("a", "t1", 0.5), make_result("b", "t1", 0.7),
               make_result("a", "t2", 0.2)]
    frames = results_frames(results)
    assert list(frames) == ["digits-cnn_s-v1.0.0"]
    md = to_markdown(frames)
    assert "| a | 0.500 ± 0.100 | **0.200 ± 0.100** |" in md  # best of its column
    assert "| b | **0.700 ± 0.100** | – |" in md
    assert "t1 (kendall_tau)" in md
    assert "bootstrap" not in md  # no intervals (schema < 3 files): no note about them
    csv = to_csv(frames).strip().splitlines()
    assert csv[0] == "zoo,method,task,metric,mean,std,n_seeds,ci_low,ci_high,ci_level,ci_unit"
    assert len(csv) == 4


def test_tables_show_intervals_and_std_only_for_several_seeds() -> None:
    results = [make_result("a", "t1", 0.5, ci=True), make_result("b", "t1", 0.7, seeds=1,
                                                                  ci=True)]
    frames = results_frames(results)
    md = to_markdown(frames)
    assert "| a | 0.500 ± 0.100 [0.300, 0.650] |" in md
    assert "| b | **0.700 [0.500, 0.850]** |" in md  # one seed: no ± std
    assert "do not overlap" in md
    assert "| a | 0.500 ± 0.100 |" in to_markdown(frames, ci=False)
    one_model = make_result("c", "t1", 0.1, seeds=1, ci=True)
    one_model.main_score.ci = ConfidenceInterval(low=None, high=None, n_units=1,
                                                 n_resamples=1000, reason="1 model(s)")
    assert "| c | 0.100 [n/a] |" in to_markdown(results_frames([*results, one_model]))
    import io

    import pandas as pd

    csv = pd.read_csv(io.StringIO(to_csv(frames)))
    got = csv[["mean", "std", "n_seeds", "ci_low", "ci_high", "ci_level"]].to_numpy()
    assert got.ravel() == pytest.approx([0.5, 0.1, 2, 0.3, 0.65, 0.95,
                                         0.7, 0.0, 1, 0.5, 0.85, 0.95])
    assert list(csv.ci_unit) == ["model", "model"]
