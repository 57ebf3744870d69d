"""Read a source dataset from a Hugging Face ``datasets`` copy, never downloading.

Three places are understood:

* a ``DatasetDict.save_to_disk`` folder (has ``dataset_dict.json``),
* a folder of parquet files in Hub layout (``data/train-00000-of-00001.parquet``, ...; the
  splits are found with ``datasets``' own file-name conventions),
* the ``datasets`` cache (``<cache>/<namespace>___<name>/...``), loaded with
  ``datasets.load_dataset(hub_id, cache_dir=...)`` in offline mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelzoo.sources.formats import RawSource, SourceFormatError

if TYPE_CHECKING:
    from datasets import Dataset

IMAGE_COLUMNS = ("image", "img")
LABEL_COLUMNS = ("label", "fine_label", "labels")
TEST_SPLITS = ("test", "valid", "validation")  # first present is the official test set


def hf_cache_folder(cache_dir: Path, hub_id: str) -> Path:
    """The folder ``datasets`` uses for ``hub_id`` inside ``cache_dir``."""
    from datasets.naming import camelcase_to_snakecase

    *namespace, name = hub_id.split("/")
    return cache_dir / "___".join([*namespace, camelcase_to_snakecase(name)])


def is_hf_copy(folder: Path) -> bool:
    """Whether ``folder`` looks like a ``save_to_disk`` folder or holds parquet files."""
    if not folder.is_dir():
        return False
    return (folder / "dataset_dict.json").is_file() or any(folder.rglob("*.parquet"))


def _pick(ds: Dataset, wanted: tuple[str, ...], feature_type: str) -> str:
    for name in wanted:
        if name in ds.column_names:
            return name
    for name, feat in ds.features.items():
        if type(feat).__name__ == feature_type:
            return name
    raise SourceFormatError(
        f"no {feature_type} column: expected one of {', '.join(wanted)}, "
        f"found {', '.join(ds.column_names)}"
    )


def _to_arrays(ds: Dataset, channels: int) -> tuple[np.ndarray, np.ndarray]:
    from datasets import Image

    img_col = _pick(ds, IMAGE_COLUMNS, "Image")
    lab_col = _pick(ds, LABEL_COLUMNS, "ClassLabel")
    ds = ds.select_columns([img_col, lab_col])
    ds = ds.cast_column(img_col, Image(mode="L" if channels == 1 else "RGB"))
    batch = ds.with_format("numpy")[:]
    x = batch[img_col]
    if x.dtype == object:  # images of different sizes
        raise SourceFormatError("images do not all have the same size")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    else:
        raise SourceFormatError(f"unexpected image array shape {x.shape}")
    y = np.asarray(batch[lab_col])
    if y.dtype.kind not in "iu":
        raise SourceFormatError(f"label column {lab_col!r} is not integer ({y.dtype})")
    return np.ascontiguousarray(x, dtype=np.uint8), y.astype(np.int64)


def raw_from_splits(splits: Mapping[str, Dataset], *, channels: int, origin: str) -> RawSource:
    """Turn ``{"train": ds, "test"|"valid"|"validation": ds}`` into a :class:`RawSource`."""
    if "train" not in splits:
        raise SourceFormatError(f"{origin}: no 'train' split (found {', '.join(splits)})")
    test = next((s for s in TEST_SPLITS if s in splits), None)
    if test is None:
        raise SourceFormatError(
            f"{origin}: no test split: expected one of {', '.join(TEST_SPLITS)} "
            f"(found {', '.join(splits)})"
        )
    try:
        pools = {
            "train": _to_arrays(splits["train"], channels),
            "test": _to_arrays(splits[test], channels),
        }
    except SourceFormatError as e:
        raise SourceFormatError(f"{origin}: {e}") from e
    suffix = "" if test == "test" else f"; split {test!r} used as test"
    return RawSource(pools=pools, origin=f"{origin}{suffix}")


def _parquet_splits(folder: Path) -> dict[str, Dataset]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset
    from datasets.data_files import DataFilesDict, get_data_patterns
    from datasets.exceptions import DataFilesNotFoundError
    from datasets.table import InMemoryTable

    try:
        patterns = get_data_patterns(str(folder))
        files = DataFilesDict.from_patterns(patterns, base_path=str(folder))
    except (DataFilesNotFoundError, FileNotFoundError) as e:
        raise SourceFormatError(f"{folder}: no data files: {e}") from e
    out = {}
    for split, paths in files.items():
        parquet = sorted(p for p in paths if p.endswith(".parquet"))
        if parquet:
            table = pa.concat_tables([pq.read_table(p) for p in parquet])
            out[str(split)] = Dataset(InMemoryTable(table), split=str(split))
    return out


def read_hf_copy(folder: Path, *, channels: int, config: str | None = None) -> RawSource:
    """Read a ``save_to_disk`` folder or a folder of parquet files.

    Args:
        folder: the folder (``<data_dir>/<source name>``).
        channels: 1 for grayscale sources, 3 for colour (images are converted).
        config: Hub config name; when ``folder/<config>`` exists (a Hub repo with several
            configs, e.g. SVHN), only that sub-folder is read.
    """
    from datasets import load_from_disk

    if config and (folder / config).is_dir():
        folder = folder / config
    if (folder / "dataset_dict.json").is_file():
        try:
            splits: Mapping[str, Any] = load_from_disk(str(folder))
        except (FileNotFoundError, ValueError) as e:
            raise SourceFormatError(f"{folder}: broken save_to_disk folder: {e}") from e
        return raw_from_splits(splits, channels=channels, origin=f"{folder} (save_to_disk)")
    return raw_from_splits(
        _parquet_splits(folder), channels=channels, origin=f"{folder} (parquet files)"
    )


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    import datasets.config
    import huggingface_hub.constants

    saved = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = True
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def read_hf_cache(cache_dir: Path, *, hub_id: str, config: str | None, channels: int) -> RawSource:
    """Load ``hub_id`` from a ``datasets`` cache folder in offline mode (never downloads)."""
    import datasets

    with _offline():
        try:
            dd = datasets.load_dataset(hub_id, config, cache_dir=str(cache_dir))
        except (ValueError, FileNotFoundError, ConnectionError) as e:
            raise SourceFormatError(
                f"{hf_cache_folder(cache_dir, hub_id)}: cannot load {hub_id!r} from the "
                f"Hugging Face cache offline: {e}"
            ) from e
    return raw_from_splits(
        dd, channels=channels, origin=f"{cache_dir} (Hugging Face cache of {hub_id})"
    )
