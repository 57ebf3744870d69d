"""Reconstruction as a measured quantity: the reconstruction task type (an identity autoencoder
scores 1.0, a broken one chance), SANE's ``reconstruct``, the validation check ``sane train``
logs, and the validation-only scores the SANE settings are chosen by (no test split read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import evaluate
from benchmarks.errors import MethodError
from benchmarks.methods.base import capabilities
from benchmarks.methods.sane_method import Sane, SaneSampler
from benchmarks.tasks.metadata import TaskMetadata, ZooRef
from modelzoo.storage import load_zoo, read_manifest, weights_tensor
from sane import SaneConfig, train
from sane.run import load_run
from tests.sane_fixtures import single_thread

pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py

CFG = SaneConfig(d_model=16, n_heads=2, n_layers=1, latent_dim=8, token_size=32,
                 window_size=16, projection_dim=8, epochs=2, batch_size=8, device="cpu",
                 recon_every=1, recon_models=3)


def _task(zoo: Path) -> TaskMetadata:
    m = read_manifest(zoo)
    return TaskMetadata(name="test-reconstruction", description="d", type="reconstruction",
                        zoo=ZooRef(name=m.name, version=m.version), target="weights",
                        metrics=("accuracy_ratio", "decoded_accuracy", "original_accuracy",
                                 "weight_error"),
                        main_score="accuracy_ratio")


class Identity:
    """A perfect autoencoder."""

    name = "identity"

    def meta(self) -> dict[str, Any]:
        return {}

    def reconstruct(self, *, zoo: Path, manifest: Any, architecture: str,
                    weights: np.ndarray, seed: int) -> np.ndarray:
        return weights


class Collapsed(Identity):
    """A broken autoencoder: every model decodes to the same (mean-like) constant weights."""

    name = "collapsed"

    def reconstruct(self, *, zoo: Path, manifest: Any, architecture: str,
                    weights: np.ndarray, seed: int) -> np.ndarray:
        return np.full_like(weights, 0.01)


@pytest.fixture(scope="module")
def run(var_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sane-recon") / "run"
    with single_thread():
        train(zoo=var_zoo, out=out, config=CFG, progress=False)
    return out


def test_identity_scores_one_and_a_broken_autoencoder_scores_chance(var_zoo: Path) -> None:
    task = _task(var_zoo)
    (ident,) = evaluate(method=Identity(), zoo=var_zoo, tasks=[task], seeds=2,
                        allow_unpinned=True)
    s = ident.scores["test"]
    assert s["accuracy_ratio"].mean == 1.0 and s["weight_error"].mean == 0.0
    assert s["accuracy_ratio"].ci.low == s["accuracy_ratio"].ci.high == 1.0
    assert s["accuracy_ratio"].ci.unit == "model"
    assert s["original_accuracy"].mean > 0.5  # trained models: a ratio that means something
    test = load_zoo(var_zoo, "test").select_columns(["model_id"]).to_pandas()
    assert ident.details["per_seed"][0]["models"] == test.model_id.nunique()
    (broken,) = evaluate(method=Collapsed(), zoo=var_zoo, tasks=[task], seeds=1,
                         allow_unpinned=True)
    b = broken.scores["test"]
    assert b["decoded_accuracy"].mean < 0.2  # chance on 10 classes is 0.1
    assert b["accuracy_ratio"].mean < 0.3
    assert b["original_accuracy"].mean == s["original_accuracy"].mean


def test_a_method_without_reconstruct_cannot_do_the_task(var_zoo: Path) -> None:
    with pytest.raises(MethodError, match="needs reconstruct"):
        evaluate(method="chance", zoo=var_zoo, tasks=[_task(var_zoo)], seeds=1,
                 allow_unpinned=True)


def test_sane_reconstructs_through_its_run(var_zoo: Path, run: Path, tmp_path: Path) -> None:
    from sane.reconstruct import reconstruct_weights

    manifest = read_manifest(var_zoo)
    method = Sane(run=run)
    assert "reconstruct" in capabilities(method)
    assert "reconstruct" not in capabilities(SaneSampler(run=run))
    method.setup(zoo=var_zoo, manifest=manifest, seed=0, workdir=tmp_path / "w")
    w = weights_tensor(load_zoo(var_zoo, "test"))[:3].numpy()
    out = method.reconstruct(zoo=var_zoo, manifest=manifest, architecture="cnn_s", weights=w,
                             seed=0)
    assert out.shape == w.shape and out.dtype == np.float32 and not np.allclose(out, w)
    layout = manifest.architectures["cnn_s"].layout
    want = reconstruct_weights(load_run(run, device="cpu"), "cnn_s", layout, w)
    np.testing.assert_allclose(out, want.numpy(), atol=1e-6)
    (res,) = evaluate(method=method, zoo=var_zoo, tasks=[_task(var_zoo)], seeds=1,
                      allow_unpinned=True)
    assert 0.0 <= res.main_score.mean <= 1.5


def test_train_logs_validation_reconstruction_accuracy(var_zoo: Path, run: Path) -> None:
    import json

    entries = json.loads((run / "history.json").read_text())
    n_val = load_zoo(var_zoo, "validation").select_columns(["model_id"]).to_pandas().nunique()
    assert len(entries) == CFG.epochs
    for e in entries:  # recon_every 1: after every epoch
        assert e["val_recon_models"] == min(CFG.recon_models, int(n_val.iloc[0]))
        assert 0.0 <= e["val_recon_acc"] <= 1.0 and 0.5 < e["val_orig_acc"] <= 1.0
        assert e["val_recon_ratio"] == pytest.approx(e["val_recon_ratio"])  # finite


class _ValidationOnly:
    """A source whose training and test images cannot be read."""

    def __init__(self, src: Any) -> None:
        self._src = src

    def __getattr__(self, name: str) -> Any:
        if name in ("x_test", "y_test", "x_train", "y_train"):
            raise AssertionError(f"read the source's {name} while choosing settings")
        return getattr(self._src, name)


def test_settings_are_chosen_without_the_test_split(
    var_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training (with its reconstruction check), SANE_SUB's selection and the validation
    scores of benchmarks.sane_validation read train / validation rows and the
    validation images only."""
    import modelzoo
    import modelzoo.sources
    import modelzoo.storage
    import sane.data
    from benchmarks import sane_validation
    from benchmarks.registry import TASKS
    from benchmarks.zoo import EvalZoo

    splits: list[str | None] = []
    real_zoo, real_source = modelzoo.storage.load_zoo, modelzoo.sources.load_source

    def spy_zoo(path: Path, split: str | None = None, **kw: Any) -> Any:
        splits.append(split)
        return real_zoo(path, split, **kw)

    for mod in (modelzoo, modelzoo.storage, sane.data, sane_validation):
        monkeypatch.setattr(mod, "load_zoo", spy_zoo)
    monkeypatch.setattr(modelzoo.sources, "load_source",
                        lambda *a, **kw: _ValidationOnly(real_source(*a, **kw)))
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="input projection cannot keep them all"):
        train(zoo=var_zoo, out=out, config=CFG.replace(epochs=1), progress=False)  # 32 > 16
    assert "val_recon_ratio" in load_run(out).path.parent.joinpath("history.json").read_text()
    manifest = read_manifest(var_zoo)
    method = SaneSampler(run=out, sampler="subsampled", candidates=2)
    method.setup(zoo=var_zoo, manifest=manifest, seed=0, workdir=tmp_path / "w")
    target = EvalZoo(var_zoo).target_model(TASKS.get("digits-generation"))
    w = method.sample(zoo=var_zoo, manifest=manifest, target=target, n=2, seed=0)
    assert w.shape == (2, target.num_params)
    assert method.meta()["sampling"]["cnn_s/n=2"]["candidates"] == 4
    rec = sane_validation.reconstruction(out, var_zoo)
    assert 0.0 <= rec["val_recon_ratio"] <= 2.0
    smp = sane_validation.sampling(out, var_zoo, n=2, candidates=2, seeds=(0,))
    assert {"accuracy", "novelty", "novel_fraction"} <= set(smp["subsampled"])
    prb = sane_validation.probes(out, var_zoo, targets=("test_acc",))
    assert set(prb) == {"sane/test_acc", "s(W)/test_acc"}
    assert splits and set(splits) <= {"train", "validation"}, splits
