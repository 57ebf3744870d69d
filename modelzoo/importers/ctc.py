"""``ctc``: the Small CNN Zoo of Unterthiner et al. 2020 ("Predicting Neural Network Accuracy
from Weights"), the zoo NFN, DWSNet, Neural Graphs and ScaleGMN report Kendall tau on.

Layout (one folder per dataset, e.g. ``cifar10/`` as unpacked from the authors' archive)::

    weights.npy      float32 [rows, 4970]: one checkpoint per row, layers in layout.csv order
    metrics.csv.gz   one line per row: modeldir, step, test_accuracy, test_loss,
                     train_accuracy, train_loss, config.* (the model's hyperparameters)
    layout.csv       varname,start_idx,end_idx,shape: e.g. sequential/conv2d/bias:0 (16,)
                     then sequential/conv2d/kernel:0 (3, 3, 1, 16): bias then kernel, HWIO

How it is read:

* models are grouped by ``modeldir``; a row's epoch is its ``step`` (0, 1, 2, 3, 20, 40, 60,
  80, 86); a ``(modeldir, step)`` listed twice keeps its first row and is flagged;
* weights are converted from the TensorFlow layout to the ``ctc_cnn`` architecture's torch
  layout: per layer, kernel ``(kh, kw, in, out)`` -> ``(out, in, kh, kw)`` and dense
  ``(in, out)`` -> ``(out, in)``, weight before bias; one column permutation computed from
  ``layout.csv`` does it for every row. The padding is not recorded in these files; the
  authors' public training script (google-research ``dnn_predict_accuracy/train_network.py``,
  ``build_cnn``) uses Keras' default ``padding="valid"`` with ``--cnn_stride`` 2, as
  ``ctc_cnn`` does at 28/32 px (not checked against the released weights, e.g. by
  re-evaluating their accuracy on images);
* ``weights.npy`` is memory-mapped and read one group of rows at a time, models in file order
  (a group is one stretch of the file: the kernel maps about a megabyte around every
  scattered row it faults in); the mapped pages are released after each group, so the
  importer's resident memory does not grow with the file (``benchmarks/perf/import_ctc.py``
  measures it). ``metrics.csv.gz`` is streamed in
  blocks into compact per-row arrays (about 24 bytes a row);
* hyperparameters: ``config.random_seed``, ``learning_rate``, ``l2reg`` (an L2 penalty, in
  the ``weight_decay`` column), ``dropout``, ``activation``, ``w_init`` (Keras names mapped:
  ``glorot_*`` -> ``xavier_*``, ``he_*`` -> ``kaiming_*``), ``optimizer``,
  ``train_fraction``; ``init_std`` and the rest are listed as unmapped;
* splits: ``hash`` by default; ``nfn`` with ``--split-file`` (NFN's ``<dataset>_split.csv``)
  reproduces the NFN / Neural Graphs protocol (:mod:`modelzoo.importers.splits`).
"""

from __future__ import annotations

import ast
import csv
import gzip
import hashlib
import math
import mmap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from modelzoo.architectures import create_model
from modelzoo.errors import ImportFormatError
from modelzoo.importers.base import (
    MAX_METADATA_BYTES,
    FormatPlan,
    ImportOptions,
    ModelRows,
    ZooFormat,
    check_size,
    guess_source,
    inside,
    register_format,
)
from modelzoo.importers.splits import hash_splits, nfn_splits, read_row_order
from modelzoo.storage.layout import LayerSpec, layer_layout, layout_size
from modelzoo.storage.manifest import ArchitectureEntry, SourceEntry

FILES = ("weights.npy", "metrics.csv.gz", "layout.csv")
#: The step NFN predicts accuracy at (the last checkpoint).
FINAL_STEP = 86
#: metrics.csv.gz column -> metric column.
METRIC_COLUMNS = {"train_loss": "train_loss", "train_accuracy": "train_acc",
                  "test_loss": "test_loss", "test_accuracy": "test_acc"}
#: config.* column -> hyperparameter column.
HPARAM_COLUMNS = {"config.random_seed": "seed", "config.learning_rate": "lr",
                  "config.l2reg": "weight_decay", "config.dropout": "dropout",
                  "config.activation": "activation", "config.w_init": "init",
                  "config.optimizer": "optimizer", "config.train_fraction": "train_fraction"}
#: Keras initializer names -> the toolkit's (others are kept as they are).
INITS = {"glorot_normal": "xavier_normal", "glorot_uniform": "xavier_uniform",
         "he_normal": "kaiming_normal", "he_uniform": "kaiming_uniform",
         "RandomNormal": "normal", "RandomUniform": "uniform"}
#: Folder-name fragments -> source (the CTC zoos train on grayscale images).
SOURCES = {"cifar10": "cifar10_gs", "svhn": "svhn_gs", "fashion": "fashion_mnist",
           "mnist": "mnist"}
#: Input size per source (default 32).
IMAGE_SIZE = {"mnist": 28, "fashion_mnist": 28}


def npy_header(path: Path) -> tuple[tuple[int, int], np.dtype, int]:
    """Shape, dtype and data offset of a 2-D C-order ``.npy`` file (read from its header).

    Raises:
        ImportFormatError: not a .npy file, or not a 2-D float C-order array.
    """
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = reader(f)
        except ValueError as e:
            raise ImportFormatError(f"{path} is not a .npy file: {e}") from None
        offset = f.tell()
    if len(shape) != 2 or fortran or dtype.kind != "f" or dtype.hasobject:
        raise ImportFormatError(f"{path}: expected a 2-D C-order float array, got shape {shape},"
                                f" dtype {dtype}, fortran_order {fortran}")
    if offset + math.prod(shape) * dtype.itemsize > path.stat().st_size:
        raise ImportFormatError(f"{path} is shorter than its header says (truncated?)")
    return (int(shape[0]), int(shape[1])), dtype, offset


class RowReader:
    """Rows of ``weights.npy`` through a memory map whose pages are released after each read."""

    def __init__(self, path: Path) -> None:
        (self.rows, self.cols), self.dtype, offset = npy_header(path)
        self._file = open(path, "rb")
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        self.array = np.ndarray((self.rows, self.cols), self.dtype, buffer=self._map,
                                offset=offset)

    def take(self, idx: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        """``float32`` copies of rows ``idx`` (optionally of ``columns``, in that order).

        Rows are read in file order, one contiguous run of rows at a time; afterwards the
        mapped pages are dropped from the process's resident memory (they stay in the page
        cache), so memory does not grow with the file.
        """
        order = np.argsort(idx, kind="stable")
        rows = idx[order]
        width = self.cols if columns is None else len(columns)
        out = np.empty((len(idx), width), np.float32)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            part = self.array[rows[a]:rows[b - 1] + 1]
            out[order[a:b]] = part if columns is None else part[:, columns]
        if hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)
        return out

    def close(self) -> None:
        """Unmap and close the file."""
        del self.array
        self._map.close()
        self._file.close()


#: A layer of layout.csv: name, kernel shape, start, end, bias shape, start, end.
Layer = tuple[str, tuple[int, ...], int, int, tuple[int, ...], int, int]


def read_layout(path: Path, cols: int) -> list[Layer]:
    """``layout.csv`` as layers in file order: (name, kernel shape, kernel start, kernel end,
    bias shape, bias start, bias end).

    Raises:
        ImportFormatError: columns missing, ranges that do not tile ``[0, cols)``, or a layer
            without exactly one kernel and one bias.
    """
    check_size(path, MAX_METADATA_BYTES, "layout.csv")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"varname", "start_idx", "end_idx", "shape"}
        if not need <= set(reader.fieldnames or ()):
            missing = sorted(need - set(reader.fieldnames or ()))
            raise ImportFormatError(f"{path} lacks columns {missing}")
        entries = list(reader)
    layers: dict[str, dict[str, tuple[tuple[int, ...], int, int]]] = {}
    pos = 0
    for e in entries:
        try:
            shape = tuple(int(d) for d in ast.literal_eval(e["shape"]))
            start, end = int(e["start_idx"]), int(e["end_idx"])
        except (ValueError, SyntaxError, TypeError):
            raise ImportFormatError(f"{path}: unreadable row {e}") from None
        if start != pos or end - start != math.prod(shape):
            raise ImportFormatError(f"{path}: {e['varname']} covers [{start}, {end}) with shape "
                                    f"{shape}; rows must tile the vector in order from {pos}")
        pos = end
        layer, _, var = e["varname"].rpartition("/")
        kind = var.split(":")[0]
        if kind not in ("kernel", "bias"):
            raise ImportFormatError(f"{path}: variable {e['varname']} is neither a kernel nor a "
                                    "bias")
        layers.setdefault(layer, {})[kind] = (shape, start, end)
    if pos != cols:
        raise ImportFormatError(f"{path} covers {pos} values but weights.npy rows have {cols}")
    out = []
    for name, v in layers.items():
        if set(v) != {"kernel", "bias"}:
            raise ImportFormatError(f"{path}: layer {name} has {sorted(v)}, expected a kernel "
                                    "and a bias")
        out.append((name, *v["kernel"], *v["bias"]))
    return out


def torch_permutation(layers: list[Layer], layout: list[LayerSpec]) -> np.ndarray:
    """Column permutation: ``torch_row = tf_row[perm]`` (TF HWIO, bias first -> torch OIHW,
    weight first), checked against the architecture's layout."""
    ours = [(s.name, s.shape) for s in layout]
    if len(ours) != 2 * len(layers):
        raise ImportFormatError(f"layout.csv has {len(layers)} layers, ctc_cnn {len(ours) // 2}")
    perm = []
    for i, (name, kshape, ks, ke, bshape, bs, be) in enumerate(layers):
        idx = np.arange(ks, ke).reshape(kshape)
        if len(kshape) == 4:
            idx = idx.transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
        elif len(kshape) == 2:
            idx = idx.T  # (in, out) -> (out, in)
        else:
            raise ImportFormatError(f"layout.csv: kernel {name} has shape {kshape}")
        (wname, wshape), (bname, bshape_ours) = ours[2 * i], ours[2 * i + 1]
        if idx.shape != wshape or tuple(bshape) != bshape_ours:
            raise ImportFormatError(f"layout.csv layer {name}: kernel {kshape} / bias {bshape} "
                                    f"does not fit ctc_cnn's {wname} {wshape} / {bname} "
                                    f"{bshape_ours}")
        perm += [idx.reshape(-1), np.arange(bs, be)]
    return np.concatenate(perm)


def _header(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return next(csv.reader(f), [])


def _hparams(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"batch_size": None, "schedule": None}
    for col, name in HPARAM_COLUMNS.items():
        v = config.get(col)
        out[name] = None if v is None or (isinstance(v, float) and math.isnan(v)) else v
    if out["seed"] is not None:
        out["seed"] = int(out["seed"])
    if isinstance(out["init"], str):
        out["init"] = INITS.get(out["init"], out["init"])
    if isinstance(out["optimizer"], str):
        out["optimizer"] = out["optimizer"].lower()
    return out


def read_metrics(path: Path, rows: int) -> dict[str, Any]:
    """Stream ``metrics.csv.gz`` into compact per-row arrays and per-model configs.

    Returns:
        ``modeldirs`` (first-seen order), ``code`` and ``step`` per row, ``metrics`` per row,
        ``config`` per model code, the config columns found.

    Raises:
        ImportFormatError: columns missing, or a row count other than ``rows``.
    """
    header = _header(path)
    if not {"modeldir", "step"} <= set(header):
        raise ImportFormatError(f"{path} lacks the modeldir/step columns (has {header[:8]}...)")
    metric_cols = [c for c in METRIC_COLUMNS if c in header]
    config_cols = [c for c in header if c.startswith("config.")]
    types = {"modeldir": pa.string(), "step": pa.int64(),
             **{c: pa.float64() for c in metric_cols}}
    reader = pacsv.open_csv(
        pa.input_stream(str(path), compression="gzip"),
        read_options=pacsv.ReadOptions(block_size=1 << 22),
        convert_options=pacsv.ConvertOptions(
            include_columns=["modeldir", "step", *metric_cols, *config_cols], column_types=types))
    codes_of: dict[str, int] = {}
    codes, steps = [], []
    metrics: dict[str, list[np.ndarray]] = {c: [] for c in metric_cols}
    configs: list[dict[str, Any]] = []
    for batch in reader:
        dirs = batch.column("modeldir").to_pylist()
        code = np.empty(len(dirs), np.int32)
        new = []
        for i, d in enumerate(dirs):
            if d not in codes_of:
                codes_of[d] = len(codes_of)
                new.append(i)
            code[i] = codes_of[d]
        if new:
            take = batch.take(pa.array(new)).select(config_cols).to_pylist()
            configs += take
        codes.append(code)
        steps.append(batch.column("step").to_numpy(zero_copy_only=False).astype(np.int32))
        for c in metric_cols:
            metrics[c].append(batch.column(c).to_numpy(zero_copy_only=False).astype(np.float32))
    code_all = np.concatenate(codes) if codes else np.zeros(0, np.int32)
    if len(code_all) != rows:
        raise ImportFormatError(f"{path} has {len(code_all)} rows but weights.npy {rows}; the "
                                "two files must list the same checkpoints in the same order")
    return {"modeldirs": list(codes_of), "code": code_all, "step": np.concatenate(steps),
            "metrics": {METRIC_COLUMNS[c]: np.concatenate(v) for c, v in metrics.items()},
            "config": configs, "config_columns": config_cols}


@register_format
class CTCFormat(ZooFormat):
    """The CTC Small CNN Zoo (see the module docstring)."""

    name = "ctc"
    description = ("CTC Small CNN Zoo (Unterthiner et al. 2020): weights.npy, metrics.csv.gz "
                   "and layout.csv in one folder per dataset")
    split_protocols = {"nfn": "NFN / Neural Graphs: their split file, test = its second half "
                              "of the step-86 rows, the rest shuffled (seed 0) 80/20"}
    example = ("zoo import ctc data/cifar10 --splits nfn --split-file "
               "nfn/experiments/predict_gen_data_splits/cifar10_split.csv --out zoos/ctc")

    def origin_files(self, root: Path) -> list[Path]:  # noqa: D102
        missing = [f for f in FILES if not (root / f).is_file()]
        if missing:
            raise ImportFormatError(f"{root} lacks {', '.join(missing)} (a CTC zoo folder holds "
                                    f"{', '.join(FILES)})")
        return [inside(root, root / f) for f in FILES]

    def plan(self, root: Path, options: ImportOptions) -> FormatPlan:  # noqa: D102
        files = dict(zip(FILES, self.origin_files(root)))
        (rows, cols), _, _ = npy_header(files["weights.npy"])
        layers = read_layout(files["layout.csv"], cols)
        source = options.source or guess_source(root, SOURCES) or "unknown"
        kwargs = {"in_channels": layers[0][1][2], "num_classes": layers[-1][1][-1],
                  "image_size": IMAGE_SIZE.get(source, 32)}
        layout = layer_layout(create_model("ctc_cnn", **kwargs))
        perm = torch_permutation(layers, layout)
        meta = read_metrics(files["metrics.csv.gz"], rows)
        code, step = meta["code"], meta["step"]
        dirs = meta["modeldirs"]
        ids = [f"ctc_cnn-{source}-{hashlib.sha256(d.encode()).hexdigest()[:12]}" for d in dirs]
        if len(set(ids)) != len(ids):
            raise ImportFormatError(f"{root}: two modeldirs hash to the same model id")
        # rows of each model by step; a repeated (model, step) keeps its first row
        order = np.lexsort((np.arange(rows), step, code))
        first = np.ones(rows, bool)
        same = (code[order][1:] == code[order][:-1]) & (step[order][1:] == step[order][:-1])
        first[1:] = ~same
        dup = int((~first).sum())
        order = order[first]
        bounds = np.searchsorted(code[order], np.arange(len(dirs) + 1))
        rows_of = {ids[c]: order[bounds[c]:bounds[c + 1]] for c in range(len(dirs))}
        models = {m: ("ctc_cnn", len(r)) for m, r in rows_of.items()}
        hparams = {ids[c]: _hparams(cfg) for c, cfg in enumerate(meta["config"])}
        final = step == FINAL_STEP
        flags: dict[str, Any] = {}
        if dup:
            flags["repeated_model_step_rows_skipped"] = dup
        no_final = [m for m, r in rows_of.items() if not final[r].any()]
        if no_final:
            flags["models_without_step_86"] = len(no_final)
        if options.splits == "nfn":
            if options.split_file is None:
                raise ImportFormatError("--splits nfn needs --split-file: NFN's split CSV of this"
                                        " dataset (experiments/predict_gen_data_splits/ in the "
                                        "NFN repository)")
            row_order = read_row_order(options.split_file, rows)
            splits, protocol = nfn_splits(row_order, final, code, ids)
            protocol["final_step"] = FINAL_STEP
        else:
            splits, protocol = hash_splits(ids), {}
        metrics = meta["metrics"]
        reader_path = files["weights.npy"]

        def rows_(mids: Sequence[str]) -> Iterator[ModelRows]:
            idx = np.concatenate([rows_of[m] for m in mids])
            reader = RowReader(reader_path)
            try:
                block = reader.take(idx, perm)
            finally:
                reader.close()
            at = 0
            for m in mids:
                r = rows_of[m]
                yield ModelRows(m, step[r].astype(np.int64), block[at:at + len(r)],
                                {k: v[r] for k, v in metrics.items()}, np.ones(len(r), bool),
                                hparams[m])
                at += len(r)

        slug = source.replace("_", "-")
        return FormatPlan(
            name=f"ctc-{slug}" if slug.endswith("-gs") else f"ctc-{slug}-gs",
            description=f"The CTC Small CNN Zoo (Unterthiner et al. 2020, 'Predicting Neural "
            f"Network Accuracy from Weights') on {source}, imported with `zoo import ctc`.",
            license="unknown",
            architectures={"ctc_cnn": ArchitectureEntry(name="ctc_cnn", kwargs=kwargs,
                                                         n_params=layout_size(layout),
                                                         layout=layout)},
            sources={source: SourceEntry(name=source, fingerprint="unknown: not in the zoo "
                                         "files", num_classes=kwargs["num_classes"],
                                         in_shape=(kwargs["in_channels"], kwargs["image_size"],
                                                   kwargs["image_size"]))},
            models=models, splits=splits, split_protocol=protocol, rows=rows_, flags=flags,
            unmapped=sorted(set(meta["config_columns"]) - set(HPARAM_COLUMNS)),
            group_rows=2048, order=sorted(rows_of, key=lambda m: int(rows_of[m].min())))
