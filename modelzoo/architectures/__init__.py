"""Architecture registry and the built-in architectures."""

from modelzoo.architectures import models as _models  # noqa: F401  (registers them)
from modelzoo.architectures import park as _park  # noqa: F401  (registers park_cnn)
from modelzoo.architectures.registry import (
    ACTIVATIONS,
    ARCHITECTURES,
    ArchInfo,
    count_params,
    create_model,
    list_archs,
    register_arch,
)

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "ArchInfo",
    "count_params",
    "create_model",
    "list_archs",
    "register_arch",
]
