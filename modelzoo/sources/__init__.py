"""Source datasets a zoo trains on, with fixed partitions and a recorded fingerprint.

``load_source("digits")`` works offline (scikit-learn's bundled digits). The other sources
(``mnist``, ``fashion_mnist``, ``svhn``, ``cifar10``, ``cifar100``, ``tiny_imagenet``) are read
from a local folder (torchvision layout), a Hugging Face ``save_to_disk``/parquet copy, or the
Hugging Face datasets cache; nothing is ever downloaded.
"""

from modelzoo.sources import catalog as _catalog  # noqa: F401  (registers the sources)
from modelzoo.sources.core import (
    SOURCES,
    LocalLayout,
    SourceData,
    SourceSpec,
    clear_cache,
    default_data_dir,
    list_sources,
    load_source,
)
from modelzoo.sources.formats import RawSource, SourceFormatError, safe_unpickle

__all__ = [
    "SOURCES",
    "LocalLayout",
    "RawSource",
    "SourceData",
    "SourceFormatError",
    "SourceSpec",
    "clear_cache",
    "default_data_dir",
    "list_sources",
    "load_source",
    "safe_unpickle",
]
