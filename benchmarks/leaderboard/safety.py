"""Reading an untrusted submission file: nothing in it is ever executed or unpacked.

Checks, in order, each failing with a message that says what is wrong and what to do:

1. a ``.json`` name (pickle / torch / numpy / archive suffixes get a specific refusal);
2. a regular file, at most ``max_bytes`` (checked before reading; at most that much is read);
3. leading bytes: pickle opcodes, zip / gzip / Parquet / numpy magic are refused;
4. strict UTF-8 (a leading BOM is tolerated);
5. JSON with no NaN / Infinity literals, no overflowing numbers, no duplicate keys, bounded
   nesting, and no string that is a whole pickle stream (raw, base64 or hex; detected by
   parsing opcodes with :mod:`pickletools`, which never executes anything);
6. the :class:`~benchmarks.leaderboard.schema.Submission` schema, strict mode.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import os
import pickletools
import re
import stat
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from benchmarks.leaderboard.errors import InvalidSubmissionError, UnsafeSubmissionError
from benchmarks.leaderboard.schema import MAX_SUBMISSION_BYTES, Submission

#: File name endings refused with a reason (pickle-based or archive formats).
REFUSED_SUFFIXES: dict[str, str] = {
    **dict.fromkeys((".pkl", ".pickle", ".pck", ".joblib", ".dill"), "a pickle"),
    **dict.fromkeys((".pt", ".pth", ".ckpt", ".bin"), "a torch checkpoint (pickle inside)"),
    **dict.fromkeys((".npy", ".npz"), "a numpy file (may hold pickled objects)"),
    **dict.fromkeys((".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z"), "an archive"),
}
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "a zip archive"),
    (b"\x1f\x8b", "a gzip file"),
    (b"PAR1", "a Parquet file"),
    (b"\x93NUMPY", "a numpy file (may hold pickled objects)"),
)
_B64 = re.compile(r"^[A-Za-z0-9+/=_-]{8,}$")
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2}){4,}$")
MAX_DEPTH = 12
_HOW = "make the file with `bench submit` (one JSON file, no pickles or archives)"


def is_pickle(b: bytes) -> bool:
    """Whether ``b`` is a whole pickle stream: every byte parses as pickle opcodes up to a
    final STOP. Parsed with :func:`pickletools.genops`, which only disassembles (it imports
    and runs nothing)."""
    b = b.rstrip(b" \t\r\n")
    if len(b) < 3:
        return False
    try:
        last = None
        for op, _arg, pos in pickletools.genops(b):
            last = (op.name, pos)
    except Exception:  # noqa: BLE001  (any parse failure: not a pickle)
        return False
    return last is not None and last[0] == "STOP" and last[1] == len(b) - 1


def looks_pickled(s: str) -> bool:
    """Whether a JSON string holds a whole pickled object: as raw (latin-1) text, hex or
    base64. Ordinary text and hashes do not parse as pickle streams, so they pass.

    Short strings (row ids, class labels: the same few in every submission to a board) are
    answered from a cache."""
    return _looks_pickled_short(s) if len(s) <= 64 else _looks_pickled(s)


def _looks_pickled(s: str) -> bool:
    compact = s.strip()
    if len(compact) < 3:
        return False
    candidates: list[bytes] = []
    if all(ord(c) < 256 for c in compact):
        candidates.append(compact.encode("latin-1"))
    if _HEX.match(compact):
        candidates.append(bytes.fromhex(compact))
    if _B64.match(compact):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                candidates.append(decode(compact + "=" * (-len(compact) % 4)))
            except (binascii.Error, ValueError):
                continue
    return any(is_pickle(b) for b in candidates)


_looks_pickled_short = functools.lru_cache(maxsize=1 << 16)(_looks_pickled)


def read_bounded(path: str | Path, *, max_bytes: int = MAX_SUBMISSION_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (never reads more than that).

    Raises:
        UnsafeSubmissionError: missing, not a regular file, or too large.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise UnsafeSubmissionError(f"cannot read submission {p}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeSubmissionError(f"submission {p} is not a regular file; {_HOW}")
    if st.st_size > max_bytes:
        raise UnsafeSubmissionError(
            f"submission {p} is {st.st_size:,} bytes, over the limit of {max_bytes:,} bytes; "
            "submit fewer seeds or samples, or ask the board maintainer to raise --max-bytes"
        )
    with open(p, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while we looked
        raise UnsafeSubmissionError(f"submission {p} is over the limit of {max_bytes:,} bytes")
    return data


def _reject_constant(name: str) -> Any:
    raise InvalidSubmissionError(
        f"the submission contains {name}: predictions and scores must be finite numbers "
        "(a method that outputs NaN / inf must be fixed before submitting)"
    )


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        _reject_constant(f"the number {text[:40]} (overflows to inf)")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise InvalidSubmissionError(f"the submission has the key {k[:60]!r} twice in one "
                                         "object; JSON keys must be unique")
        out[k] = v
    return out


def _scan(obj: Any, where: str, depth: int) -> None:
    """Bounded nesting and no pickled blobs, anywhere (iterative over big number lists)."""
    if depth > MAX_DEPTH:
        raise InvalidSubmissionError(f"the submission is nested deeper than {MAX_DEPTH} levels "
                                     f"(at {where}); {_HOW}")
    if isinstance(obj, str):
        if looks_pickled(obj):
            raise InvalidSubmissionError(
                f"{where} holds what looks like a pickled Python object; pickles are never "
                f"loaded from submissions (they can run code). Remove it; {_HOW}"
            )
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _scan(k, f"{where} (a key)", depth + 1)
            _scan(v, f"{where}.{k[:40]}", depth + 1)
    elif isinstance(obj, list):
        if obj and all(type(v) in (int, float) for v in obj):
            return
        for i, v in enumerate(obj):
            _scan(v, f"{where}[{i}]", depth + 1)


def parse_submission_bytes(data: bytes, *, source: str = "<submission>") -> Submission:
    """Validate the bytes of a submission file (steps 3 to 6 of the module docstring).

    Raises:
        UnsafeSubmissionError: binary / pickle / archive content.
        InvalidSubmissionError: bad encoding, JSON, NaN / inf, pickled blob, or schema errors.
    """
    if (len(data) > 1 and data[0] == 0x80 and 2 <= data[1] <= 5) or is_pickle(data):
        raise UnsafeSubmissionError(
            f"{source} is a Python pickle; pickles are never loaded (they can run code). "
            f"{_HOW}"
        )
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise UnsafeSubmissionError(
                f"{source} is {what}, not JSON; archives are not unpacked (no path traversal "
                f"risk is taken). {_HOW}"
            )
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidSubmissionError(
            f"{source} is not UTF-8 text: invalid byte 0x{data[e.start]:02x} at offset "
            f"{e.start}; save the file as UTF-8 (`bench submit` does)"
        ) from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                         object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise InvalidSubmissionError(f"{source} is nested too deeply; {_HOW}") from None
    except json.JSONDecodeError as e:
        raise InvalidSubmissionError(
            f"{source} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); {_HOW}"
        ) from None
    if not isinstance(obj, dict):
        raise InvalidSubmissionError(f"{source} must hold a JSON object; {_HOW}")
    _scan(obj, "submission", 0)
    try:
        return Submission.model_validate_json(text)
    except ValidationError as e:
        raise InvalidSubmissionError(
            f"{source} does not match the submission schema: {validation_summary(e)}"
        ) from None


def validation_summary(e: ValidationError, limit: int = 5) -> str:
    """The first ``limit`` errors of a ValidationError, one short line each."""
    errs = e.errors(include_url=False, include_input=False)
    lines = [f"{'.'.join(str(x) for x in err['loc']) or '<root>'}: {err['msg']}"[:200]
             for err in errs[:limit]]
    more = f"; and {len(errs) - limit} more" if len(errs) > limit else ""
    return "; ".join(lines) + more


def read_submission_bytes(path: str | Path, *, max_bytes: int = MAX_SUBMISSION_BYTES) -> bytes:
    """The bytes of a submission file after the name and size checks (steps 1 and 2).

    Raises:
        UnsafeSubmissionError: wrong kind of file, or too large.
    """
    p = Path(path)
    suffix = "".join(p.suffixes[-1:]).lower()
    if suffix in REFUSED_SUFFIXES:
        raise UnsafeSubmissionError(
            f"{p.name} looks like {REFUSED_SUFFIXES[suffix]}; only .json submissions are "
            f"accepted and nothing is unpickled or unpacked. {_HOW}"
        )
    if suffix != ".json":
        raise UnsafeSubmissionError(f"{p.name}: submissions are .json files; {_HOW}")
    return read_bounded(p, max_bytes=max_bytes)


def read_submission(path: str | Path, *, max_bytes: int = MAX_SUBMISSION_BYTES) -> Submission:
    """Read and validate a submission file (see the module docstring).

    Raises:
        UnsafeSubmissionError: wrong kind of file, or too large.
        InvalidSubmissionError: not a valid submission.
    """
    data = read_submission_bytes(path, max_bytes=max_bytes)
    return parse_submission_bytes(data, source=os.fspath(path))
