"""SANE (Schürholt et al.) as a benchmark method: embeddings + linear probe, and sampling.

Two ways to use it:

- ``Sane(run="runs/sane")`` (``bench run --method sane --run runs/sane``) benchmarks a trained
  SANE run as it is: no training; ``setup`` checks that the run can tokenize every
  architecture of the zoo being benchmarked, and the first ``features`` call embeds that
  zoo with it (``sane.embed``); ``sample`` uses the run's sampler (``sane.sample``, with the
  run's ``sample_mode``, ``sample_bandwidth`` and ``sample_anchors``). The result's method
  meta records the run: path, config, last epoch, its training zoo (name, content hash) and
  the sha256 of ``ckpt.pt``.
- ``Sane()`` (``bench run --method sane``) trains a SANE per seed on the zoo's train split
  (``sane.train``) with :func:`sane.config.config_for_zoo`: the settings picked on validation
  models in ``sane/configs/digits-cnn_s.yaml`` (latent 128, one token per neuron with a window
  that covers the model, permutation augmentation kept, reconstruction averaged over every
  token entry as in SANE), ``Sane(config={...})`` overriding.

``features`` looks the embeddings up by ``(model_id, epoch)`` for the runner's head;
``sample`` returns the sampled weights (safetensors files) for the initialization and
generation tasks; ``reconstruct`` encodes and decodes weights (:mod:`sane.reconstruct`) for
the reconstruction tasks.

Sampling is SANE_SUB as published (Schürholt et al. 2024: 50 models drawn, each scored on
validation images, the best 10 kept): ``sampler="subsampled"`` draws ``candidates`` times
``n`` models from the KDE around the run's anchors (``sample_mode`` / ``sample_bandwidth`` /
``sample_anchors`` of the run's config), scores each on the **validation images** of the
anchors' source and keeps the best ``n``; the counts are recorded in the result's method
meta (``sampling``). ``sampler="kde"`` returns plain KDE draws (``sane-kde``: sampling only,
the like-for-like comparison without selection).

``sane`` is imported lazily, so ``bench ls`` and the other methods work without it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from benchmarks.errors import MethodError
from benchmarks.methods.base import SELECTION_CANDIDATES, TargetModel
from benchmarks.registry import register_method
from modelzoo.errors import ZooError
from modelzoo.storage import flatten_state_dict
from modelzoo.storage.manifest import Manifest

#: Version of this method's behaviour (2: zoo-fitted default config, ``run=``; 3: SANE_SUB
#: sampling by default, ``reconstruct``, the run's ``sample_anchors``).
VERSION = 3
SAMPLERS = ("subsampled", "kde")


def _sane() -> Any:
    try:
        import sane
        import sane.embed  # noqa: F401
    except ImportError as e:
        raise MethodError(
            f"the 'sane' method needs the sane package with train/embed/sample ({e})"
        ) from None
    return sane


def file_sha256(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"sha256:{h.hexdigest()}"


class Sane:
    """SANE embeddings with a linear probe; SANE samples as weights.

    Args:
        config: SANE config fields (``sane.config.SaneConfig``) over the zoo's default
            (:func:`sane.config.config_for_zoo`); ``seed`` is set per benchmark seed. Not
            with ``run``.
        run: a trained SANE run (directory or its ``ckpt.pt``) to benchmark as it is.
        head: head fitted on the embeddings (``linear`` or ``gbt``).
        name: method name in result paths.
        sampler: ``"subsampled"`` (SANE_SUB) or ``"kde"`` (plain draws).
        candidates: models drawn per kept sample by ``subsampled``.
        data_dir: where the anchors' source images live (non-bundled sources).

    Raises:
        MethodError: both ``config`` and ``run``, ``run`` is not a SANE checkpoint, or a bad
            sampler setting.
    """

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        *,
        run: str | Path | None = None,
        head: str = "linear",
        name: str = "sane",
        sampler: str = "subsampled",
        candidates: int = SELECTION_CANDIDATES,
        data_dir: str | Path | None = None,
    ) -> None:
        if run is not None and config:
            raise MethodError(
                "sane: give either run= (benchmark a trained run as it is) or config= (train "
                "one per seed), not both"
            )
        if sampler not in SAMPLERS:
            raise MethodError(f"sane: sampler must be one of {', '.join(SAMPLERS)}, not "
                              f"{sampler!r}")
        if candidates < 1:
            raise MethodError(f"sane: candidates must be >= 1, not {candidates}")
        self.sampler = sampler
        self.candidates = candidates
        self.data_dir = data_dir
        self.sampling: dict[str, dict[str, Any]] = {}  # per architecture/n: what was drawn
        self.embeds = True  # features() embeds the zoo (SaneSampler: no features)
        self._pending: tuple[Path, Any, Path] | None = None  # zoo to embed on first features()
        self._loaded: Any = None  # the SaneRun of self._run (reconstruct)
        self.overrides = dict(config or {})
        self.head = head
        self.name = name
        self._given_run: Path | None = None
        self._run_meta: dict[str, Any] | None = None
        self._config: dict[str, Any] | None = None  # the config trained / of the run
        if run is not None:
            self._given_run, self._run_meta = self._describe_run(Path(run))
            self._config = dict(self._run_meta["config"])
        self._run: Path | None = self._given_run
        self._workdir: Path | None = None
        self._embedded: tuple[str, str] | None = None  # (zoo path, content hash) embedded
        self._emb: dict[tuple[str, int], np.ndarray] = {}

    @staticmethod
    def _describe_run(run: Path) -> tuple[Path, dict[str, Any]]:
        from sane.run import ckpt_path, load_checkpoint

        try:
            ckpt = load_checkpoint(run)
        except ZooError as e:
            raise MethodError(f"sane: --run {run}: {e}") from None
        path = ckpt_path(run).resolve()
        zoo = dict(ckpt.get("zoo") or {})
        meta = {
            "path": str(path.parent if path.name == "ckpt.pt" else path),
            "ckpt_sha256": file_sha256(path),
            "epoch": int(ckpt["epoch"]),
            "config": dict(ckpt["config"]),
            "training_zoo": {k: zoo.get(k) for k in ("name", "content_hash", "path")},
        }
        return path, meta

    @property
    def config(self) -> dict[str, Any]:
        """The SANE config in use: the run's, the one trained last, else the overrides."""
        return dict(self._config) if self._config is not None else dict(self.overrides)

    def meta(self) -> dict[str, Any]:
        """SANE config, the run benchmarked (if any) and the method version."""
        out: dict[str, Any] = {"version": VERSION, "config": self.config,
                               "sampler": self.sampler, "candidates_per_sample": self.candidates}
        if self.sampling:
            out["sampling"] = dict(self.sampling)
        if self._run_meta is not None:
            out["run"] = {k: v for k, v in self._run_meta.items() if k != "config"}
        else:
            out["config_source"] = "sane.config.config_for_zoo + overrides"
            out["overrides"] = dict(self.overrides)
        return out

    def setup(self, *, zoo: Path, manifest: Manifest, seed: int, workdir: Path) -> None:
        """Train SANE on ``zoo`` with ``seed`` into ``workdir`` (not with a given run: that is
        checked against the zoo instead); every checkpoint of ``zoo`` is embedded on the first
        :meth:`features` call."""
        sane = _sane()
        self._workdir = Path(workdir)
        if self._given_run is not None:
            try:
                sane.load_run(self._given_run, device="cpu").check_zoo(manifest)
            except ZooError as e:
                raise MethodError(str(e)) from None
            key = (str(Path(zoo).resolve()), manifest.content_hash)
            if self._embedded == key:
                return  # a run is deterministic: the embeddings do not depend on the seed
            emb_dir = self._workdir / "emb"
        else:
            from sane.config import config_for_zoo

            cfg = config_for_zoo(manifest, **{**self.overrides, "seed": seed})
            self._config = cfg.to_dict()
            ckpt = sane.train(zoo=zoo, out=self._workdir / "run", config=cfg, progress=False,
                              threads=torch.get_num_threads())  # the runner's --threads
            self._run = Path(ckpt)
            self._loaded = None
            key = None
            emb_dir = self._workdir / "emb"
        if self.embeds:  # embedded on the first features() call: sampling tasks need none
            self._emb = {}
            self._pending = (Path(zoo), key, emb_dir)

    def _embed_pending(self) -> None:
        """Embed the zoo of the last setup() (``sane.embed``), once."""
        if self._pending is None:
            return
        zoo, key, emb_dir = self._pending
        emb: datasets.Dataset = _sane().embed(run=self._run, zoo=zoo, out=emb_dir,
                                              progress=False)
        table = emb.select_columns(["model_id", "epoch", "embedding"]).to_pandas()
        self._emb = {
            (str(r.model_id), int(r.epoch)): np.asarray(r.embedding, dtype=np.float32)
            for r in table.itertuples(index=False)
        }
        self._embedded, self._pending = key, None

    def features(self, dataset: datasets.Dataset, manifest: Manifest) -> np.ndarray:
        """SANE embedding of each row's checkpoint (the zoo is embedded on the first call)."""
        self._embed_pending()
        if not self._emb:
            raise MethodError("sane: setup() must run before features()")
        keys = dataset.select_columns(["model_id", "epoch"]).to_pandas()
        try:
            rows = [self._emb[(str(m), int(e))].reshape(-1)
                    for m, e in zip(keys.model_id, keys.epoch, strict=True)]
        except KeyError as e:
            raise MethodError(f"sane.embed returned no embedding for checkpoint {e}") from None
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def _loaded_run(self) -> Any:
        if self._run is None or self._workdir is None:
            raise MethodError("sane: setup() must run before sample() / reconstruct()")
        if self._loaded is None:
            self._loaded = _sane().load_run(self._run, device="cpu")
        return self._loaded

    def reconstruct(
        self, *, zoo: Path, manifest: Manifest, architecture: str, weights: np.ndarray,
        seed: int,
    ) -> np.ndarray:
        """Encode and decode ``weights`` ``[n, P]`` of ``architecture`` with the run
        (:func:`sane.reconstruct.reconstruct_weights`); deterministic, ``seed`` unused."""
        import torch

        from sane.reconstruct import reconstruct_weights

        run = self._loaded_run()
        layout = manifest.architectures[architecture].layout
        try:
            out = reconstruct_weights(run, architecture, layout, torch.as_tensor(weights))
        except ZooError as e:
            raise MethodError(f"sane.reconstruct: {e}") from None
        return out.numpy().astype(np.float32)

    def _scorer(self, zoo: Path, target: TargetModel) -> Any:
        """Accuracy on the validation images of the anchors' source (the most common source
        of the target architecture's train rows): SANE_SUB's selection score."""
        import torch

        from modelzoo import load_zoo
        from modelzoo.sources import load_source

        meta = load_zoo(zoo, "train").select_columns(["architecture", "source"]).to_pandas()
        sources = meta.source[meta.architecture == target.architecture].value_counts()
        try:
            src = load_source(str(sources.index[0]), data_dir=self.data_dir)
        except ZooError as e:
            raise MethodError(f"sane: cannot score candidates on validation images: {e}") \
                from None
        x, y = src.x_val, src.y_val  # the only images read

        @torch.no_grad()
        def score(model: torch.nn.Module) -> float:
            model.eval()
            out = model(x)
            return float((out.argmax(1) == y).float().mean()) if torch.isfinite(out).all() \
                else 0.0

        return score, str(sources.index[0])

    def sample(
        self, *, zoo: Path, manifest: Manifest, target: TargetModel, n: int, seed: int
    ) -> np.ndarray:
        """``n`` SANE samples: KDE around the run's anchors, decoded to safetensors files by
        ``sane.sample``; with ``sampler="subsampled"`` the best ``n`` of ``candidates * n``
        draws by validation accuracy (SANE_SUB)."""
        from safetensors.torch import load_file

        sane = _sane()
        self._loaded_run()  # setup() ran
        assert self._run is not None and self._workdir is not None
        out = self._workdir / f"samples-{target.architecture}-{seed}-{n}-{self.sampler}"
        extra: dict[str, Any] = {}
        source = None
        if self.sampler == "subsampled":
            score, source = self._scorer(zoo, target)
            extra = {"candidates": self.candidates * n, "score_fn": score}
        try:
            index_path = Path(sane.sample(run=self._run, zoo=zoo, out=out, n=n,
                                          architecture=target.architecture, seed=seed,
                                          method=self.sampler, **extra))
        except ZooError as e:
            raise MethodError(f"sane.sample: {e}") from None
        index = json.loads(index_path.read_text(encoding="utf-8"))
        act = index.get("kwargs", {}).get("activation", target.activation)
        if act != target.activation:
            raise MethodError(
                f"sane.sample decoded {act} models but the task's target models use "
                f"{target.activation}; set the task's finetune.activation to {act!r}"
            )
        self.sampling[f"{target.architecture}/n={n}"] = {
            "method": self.sampler, "kept": n,
            "candidates": extra.get("candidates", n),
            "scored_on": f"{source} validation images" if source else None,
            "kde_mode": index["kde_mode"], "bandwidth": index["bandwidth"],
            "anchor_latent_std": index.get("anchor_latent_std"),
            "anchors": len(index["anchors"]),
        }
        layout = manifest.architectures[target.architecture].layout
        files = [index_path.parent / Path(s["file"]).name for s in index["samples"]]
        return np.stack([flatten_state_dict(load_file(str(f)), layout).numpy()
                         for f in files[:n]])


class SaneSampler:
    """SANE samples only (no embeddings, no probe, no reconstruction): ``sane-kde``, the plain
    KDE draws beside SANE_SUB. Arguments as :class:`Sane` (``sampler="kde"`` by default)."""

    def __init__(self, config: dict[str, Any] | None = None, *, run: str | Path | None = None,
                 name: str = "sane-kde", sampler: str = "kde",
                 candidates: int = SELECTION_CANDIDATES,
                 data_dir: str | Path | None = None) -> None:
        self._sane = Sane(config, run=run, name=name, sampler=sampler, candidates=candidates,
                          data_dir=data_dir)
        self._sane.embeds = False
        self.name = name

    def meta(self) -> dict[str, Any]:
        """As :meth:`Sane.meta`."""
        return self._sane.meta()

    def setup(self, *, zoo: Path, manifest: Manifest, seed: int, workdir: Path) -> None:
        """As :meth:`Sane.setup`, without embedding the zoo."""
        self._sane.setup(zoo=zoo, manifest=manifest, seed=seed, workdir=workdir)

    def sample(
        self, *, zoo: Path, manifest: Manifest, target: TargetModel, n: int, seed: int
    ) -> np.ndarray:
        """As :meth:`Sane.sample`."""
        return self._sane.sample(zoo=zoo, manifest=manifest, target=target, n=n, seed=seed)


@register_method("sane")
def _sane_linear() -> Sane:
    return Sane()


@register_method("sane-kde")
def _sane_kde() -> SaneSampler:
    return SaneSampler()
