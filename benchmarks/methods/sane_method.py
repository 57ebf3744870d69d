"""SANE (Schürholt et al.) as a benchmark method: embeddings + linear probe, and sampling.

``setup`` trains a SANE model on the zoo (``sane.train``; SANE itself uses only the zoo's
train split for fitting) and embeds every checkpoint (``sane.embed``); ``features`` looks the
embeddings up by ``(model_id, epoch)`` for the runner's linear head; ``sample`` draws new
weights with ``sane.sample`` (safetensors files) for the initialization and generation tasks.

``sane`` is imported lazily, so ``bench ls`` and the other methods work without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from benchmarks.errors import MethodError
from benchmarks.methods.base import TargetModel
from benchmarks.registry import register_method
from modelzoo.storage import flatten_state_dict
from modelzoo.storage.manifest import Manifest

#: Small CPU-friendly SANE settings (override with ``Sane(config={...})``).
DEFAULT_CONFIG: dict[str, Any] = {
    "d_model": 64,
    "n_heads": 4,
    "n_layers": 2,
    "latent_dim": 16,
    "token_size": 64,
    "window_size": 64,
    "epochs": 30,
    "batch_size": 32,
}


def _sane() -> Any:
    try:
        import sane
        import sane.embed  # noqa: F401
    except ImportError as e:
        raise MethodError(
            f"the 'sane' method needs the sane package with train/embed/sample ({e})"
        ) from None
    return sane


class Sane:
    """SANE embeddings with a linear probe; SANE samples as weights.

    Args:
        config: SANE config fields (``sane.config.SaneConfig``); ``seed`` is set per run.
        head: head fitted on the embeddings (``linear`` or ``gbt``).
        name: method name in result paths.
    """

    def __init__(
        self, config: dict[str, Any] | None = None, *, head: str = "linear", name: str = "sane"
    ) -> None:
        self.config = {**DEFAULT_CONFIG, **(config or {})}
        self.head = head
        self.name = name
        self._run: Path | None = None
        self._emb: dict[tuple[str, int], np.ndarray] = {}

    def meta(self) -> dict[str, Any]:
        """SANE config and version."""
        return {"config": self.config, "version": 1}

    def setup(self, *, zoo: Path, manifest: Manifest, seed: int, workdir: Path) -> None:
        """Train SANE on ``zoo`` with ``seed`` into ``workdir`` and embed every checkpoint."""
        sane = _sane()

        cfg = sane.SaneConfig.from_dict({**self.config, "seed": seed})
        ckpt = sane.train(zoo=zoo, out=Path(workdir) / "run", config=cfg, progress=False)
        self._run = Path(ckpt).parent
        emb: datasets.Dataset = sane.embed(run=self._run, zoo=zoo, out=Path(workdir) / "emb",
                                           progress=False)
        table = emb.select_columns(["model_id", "epoch", "embedding"]).to_pandas()
        self._emb = {
            (str(r.model_id), int(r.epoch)): np.asarray(r.embedding, dtype=np.float32)
            for r in table.itertuples(index=False)
        }

    def features(self, dataset: datasets.Dataset, manifest: Manifest) -> np.ndarray:
        """SANE embedding of each row's checkpoint."""
        if not self._emb:
            raise MethodError("sane: setup() must run before features()")
        keys = dataset.select_columns(["model_id", "epoch"]).to_pandas()
        try:
            rows = [self._emb[(str(m), int(e))].reshape(-1)
                    for m, e in zip(keys.model_id, keys.epoch, strict=True)]
        except KeyError as e:
            raise MethodError(f"sane.embed returned no embedding for checkpoint {e}") from None
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def sample(
        self, *, zoo: Path, manifest: Manifest, target: TargetModel, n: int, seed: int
    ) -> np.ndarray:
        """``n`` SANE samples (KDE around the best training models' embeddings, decoded to
        safetensors files by ``sane.sample``) as flat weight vectors."""
        from safetensors.torch import load_file

        sane = _sane()
        if self._run is None:
            raise MethodError("sane: setup() must run before sample()")
        out = self._run.parent / f"samples-{target.architecture}-{seed}-{n}"
        index_path = Path(sane.sample(run=self._run, zoo=zoo, out=out, n=n,
                                      architecture=target.architecture, seed=seed))
        index = json.loads(index_path.read_text(encoding="utf-8"))
        act = index.get("kwargs", {}).get("activation", target.activation)
        if act != target.activation:
            raise MethodError(
                f"sane.sample decoded {act} models but the task's target models use "
                f"{target.activation}; set the task's finetune.activation to {act!r}"
            )
        layout = manifest.architectures[target.architecture].layout
        files = [index_path.parent / Path(s["file"]).name for s in index["samples"]]
        return np.stack([flatten_state_dict(load_file(str(f)), layout).numpy()
                         for f in files[:n]])


@register_method("sane")
def _sane_linear() -> Sane:
    return Sane()
