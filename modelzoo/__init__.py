"""modelzoo: build, store, version and publish populations of trained networks."""

from __future__ import annotations

from modelzoo._version import __version__
from modelzoo.architectures import count_params, create_model, list_archs, register_arch
from modelzoo.errors import ZooError
from modelzoo.storage import (
    load_flat_weights,
    load_zoo,
    read_manifest,
    verify_zoo,
    weights_tensor,
)

__all__ = [
    "ZooError",
    "__version__",
    "build_zoo",
    "count_params",
    "import_zoo",
    "create_model",
    "list_archs",
    "load_flat_weights",
    "load_zoo",
    "read_manifest",
    "register_arch",
    "verify_zoo",
    "weights_tensor",
]


def __getattr__(name: str) -> object:
    """``modelzoo.build_zoo`` / ``modelzoo.import_zoo``, imported on first use (the builder
    pulls in the trainers)."""
    if name == "build_zoo":
        from modelzoo.builder import build_zoo

        return build_zoo
    if name == "import_zoo":
        from modelzoo.importers import import_zoo

        return import_zoo
    raise AttributeError(f"module 'modelzoo' has no attribute {name!r}")
