"""Zoo storage: Arrow shards, the ``zoo.json`` manifest, splits and zero-copy reading."""

from modelzoo.storage.layout import (
    LayerSpec,
    flatten_state_dict,
    layer_layout,
    layout_size,
    load_flat_weights,
    unflatten_weights,
)
from modelzoo.storage.manifest import FORMAT_VERSION, Manifest, read_manifest
from modelzoo.storage.reader import (
    iter_weight_batches,
    load_zoo,
    verify_zoo,
    weights_tensor,
)
from modelzoo.storage.schema import SPLITS, zoo_schema
from modelzoo.storage.verify import open_manifest, verification
from modelzoo.storage.writer import ZooWriter

__all__ = [
    "FORMAT_VERSION",
    "LayerSpec",
    "Manifest",
    "SPLITS",
    "ZooWriter",
    "flatten_state_dict",
    "iter_weight_batches",
    "layer_layout",
    "layout_size",
    "load_flat_weights",
    "load_zoo",
    "open_manifest",
    "read_manifest",
    "unflatten_weights",
    "verification",
    "verify_zoo",
    "weights_tensor",
    "zoo_schema",
]
