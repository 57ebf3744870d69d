"""``bench run --method sane --run RUN``: a trained SANE run benchmarked as it is."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.cli import cli
from benchmarks.errors import MethodError
from benchmarks.methods.sane_method import Sane
from benchmarks.results import load_results
from modelzoo.storage import read_manifest
from sane import SaneConfig, embed, train
from tests.sane_fixtures import single_thread

CFG = SaneConfig(d_model=16, n_heads=2, n_layers=1, latent_dim=4, token_size=32,
                 window_size=16, projection_dim=8, epochs=1, batch_size=8, device="cpu")


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def cnn_run(tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sane-run") / "run"
    with single_thread():
        train(zoo=tiny_zoo, out=out, config=CFG, progress=False)
    return out


def invoke(*args: object) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_bench_run_uses_the_run_as_it_is(tiny_zoo: Path, cnn_run: Path, tmp_path: Path) -> None:
    before = (cnn_run / "ckpt.pt").read_bytes()
    out, work = tmp_path / "results", tmp_path / "work"
    res = invoke("run", "--method", "sane", "--run", cnn_run, "--zoo", tiny_zoo,
                 "--task", "digits-test-acc", "--task", "digits-generation", "--seeds", 2,
                 "--out", out, "--workdir", work)
    assert res.exit_code == 0, res.output
    assert (cnn_run / "ckpt.pt").read_bytes() == before  # nothing written into the run
    assert not list(work.rglob("ckpt.pt"))  # no SANE was trained
    results = {r.task.name: r for r in load_results(out)}
    assert set(results) == {"digits-test-acc", "digits-generation"}
    meta = results["digits-test-acc"].method.meta
    manifest = read_manifest(tiny_zoo)
    assert meta["run"] == {
        "path": str(cnn_run.resolve()),
        "ckpt_sha256": "sha256:" + hashlib.sha256(before).hexdigest(),
        "epoch": 0,
        "training_zoo": {"name": manifest.name, "content_hash": manifest.content_hash,
                         "path": str(tiny_zoo.resolve())},
    }
    assert meta["config"] == CFG.to_dict()
    gen = results["digits-generation"].scores["test"]["zero_shot_accuracy"]
    assert len(gen.values) == 2 and all(np.isfinite(gen.values))


def test_features_are_the_runs_embeddings(tiny_zoo: Path, cnn_run: Path, tmp_path: Path) -> None:
    from modelzoo.storage import load_zoo

    method = Sane(run=cnn_run)
    manifest = read_manifest(tiny_zoo)
    method.setup(zoo=tiny_zoo, manifest=manifest, seed=0, workdir=tmp_path / "w")
    val = load_zoo(tiny_zoo, "validation")
    feats = method.features(val, manifest)
    ref = embed(run=cnn_run, zoo=tiny_zoo, out=tmp_path / "emb", split="validation",
                progress=False)
    by_key = {(m, e): v for m, e, v in zip(ref["model_id"], ref["epoch"], ref["embedding"])}
    want = np.stack([by_key[(m, e)] for m, e in zip(val["model_id"], val["epoch"])])
    assert feats.shape == (len(val), CFG.latent_dim)
    assert np.allclose(feats, want, atol=1e-6)


def test_a_run_that_cannot_tokenize_the_zoo_is_refused(
    tiny_zoo: Path, tiny_mlp_zoo: Path, tmp_path: Path
) -> None:
    mlp_run = tmp_path / "mlp-run"
    with single_thread():
        train(zoo=tiny_mlp_zoo, out=mlp_run, config=CFG, progress=False)
    res = invoke("run", "--method", "sane", "--run", mlp_run, "--zoo", tiny_zoo,
                 "--task", "digits-test-acc", "--seeds", 1, "--out", tmp_path / "r")
    assert res.exit_code == 2
    assert "cannot tokenize zoo digits-cnn_s architecture 'cnn_s'" in res.output
    assert "use a run trained on a zoo with this architecture" in res.output


def test_run_option_errors(tiny_zoo: Path, cnn_run: Path, tmp_path: Path) -> None:
    res = invoke("run", "--method", "chance", "--run", cnn_run, "--zoo", tiny_zoo,
                 "--task", "digits-test-acc")
    assert res.exit_code == 2 and "--run is for --method sane" in res.output
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    res = invoke("run", "--method", "sane", "--run", not_a_run, "--zoo", tiny_zoo,
                 "--task", "digits-test-acc")
    assert res.exit_code == 2 and "no SANE checkpoint" in res.output
    with pytest.raises(MethodError, match="either run= .* or config="):
        Sane(config={"epochs": 1}, run=cnn_run)
