"""modelzoo: build, store, version and publish populations of trained networks."""

from __future__ import annotations

__version__ = "0.1.0"

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
    "count_params",
    "create_model",
    "list_archs",
    "load_flat_weights",
    "load_zoo",
    "read_manifest",
    "register_arch",
    "verify_zoo",
    "weights_tensor",
]
