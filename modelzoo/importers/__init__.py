"""Importers of the field's public zoos: ``zoo import FORMAT PATH --out ZOO``.

One module per on-disk format, each registered in :data:`IMPORTERS` (a plugin adds one
through a ``modelzoo.importers`` entry point, see :func:`register_format`):

* ``modelzoos``: the Model Zoos dataset (Ray Tune trial folders), :mod:`.modelzoos`;
* ``ctc``: the CTC small-CNN zoos (``weights.npy``, ``metrics.csv.gz``, ``layout.csv``),
  :mod:`.ctc`;
* ``wildpark``: CNN Wild Park (``*/*/checkpoint.pt``), :mod:`.wildpark`;
* ``pdiff``: p-diff's per-checkpoint ``.pth`` files of a parameter subset, :mod:`.pdiff`.

:func:`import_zoo` runs any of them (:mod:`.importer`); split protocols are in
:mod:`.splits`.
"""

from modelzoo.importers import ctc as _ctc  # noqa: F401  (each module registers its format)
from modelzoo.importers import modelzoos as _modelzoos  # noqa: F401
from modelzoo.importers import pdiff as _pdiff  # noqa: F401
from modelzoo.importers import wildpark as _wildpark  # noqa: F401
from modelzoo.importers.base import (
    IMPORTERS,
    FormatPlan,
    ImportOptions,
    ModelRows,
    ZooFormat,
    load_tensors,
    map_state_dict,
    register_format,
)
from modelzoo.importers.importer import import_zoo, iter_formats, protocols

__all__ = [
    "IMPORTERS",
    "FormatPlan",
    "ImportOptions",
    "ModelRows",
    "ZooFormat",
    "import_zoo",
    "iter_formats",
    "load_tensors",
    "map_state_dict",
    "protocols",
    "register_format",
]
