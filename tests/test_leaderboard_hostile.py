"""Hostile submissions: each is rejected with a clear message, nothing in it runs, and the
board (which already holds entries) is byte-for-byte unchanged."""

from __future__ import annotations

import base64
import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from benchmarks.leaderboard import (
    IncompleteSubmissionError,
    InvalidSubmissionError,
    SubmissionRejected,
    UnsafeSubmissionError,
    ZooVersionError,
    add_submission,
)
from benchmarks.leaderboard.safety import looks_pickled
from benchmarks.leaderboard.schema import MAX_SUBMISSION_BYTES
from tests.leaderboard_fixtures import LbEnv, snapshot, variant

pytestmark = pytest.mark.usefixtures("single_thread")
PLACEHOLDER = 12345.678


class Evil:
    """Unpickling this creates the directory ``marker`` (so execution would be visible)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def _marker(tmp: Path) -> Path:
    return tmp / "PWNED"


def _json_edit(edit: Callable[[dict], None], *, raw: Callable[[str], str] | None = None,
               name: str = "sub.json") -> Callable[[Path, Path], Path]:
    def make(base: Path, tmp: Path) -> Path:
        data = json.loads(base.read_text())
        edit(data)
        text = json.dumps(data)
        if raw is not None:
            text = raw(text)
        out = tmp / name
        out.write_text(text, encoding="utf-8")
        return out
    return make


def _bytes(name: str, payload: Callable[[Path, Path], bytes]) -> Callable[[Path, Path], Path]:
    def make(base: Path, tmp: Path) -> Path:
        out = tmp / name
        out.write_bytes(payload(base, tmp))
        return out
    return make


def _pred(d: dict, value: object, task: int = 0) -> None:
    d["tasks"][task]["items"]["predictions"][0][0] = value


def _sample_task(d: dict) -> dict:
    return next(t for t in d["tasks"] if t["task"] == "digits-init-same")["items"]


def _zip(base: Path, tmp: Path) -> bytes:
    path = tmp / "archive.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("../../evil.txt", "escaped")
        z.writestr("/tmp/abs-evil.txt", "escaped")
        z.writestr("sub.json", base.read_text())
    return path.read_bytes()


def _torch_file(base: Path, tmp: Path) -> Path:
    out = tmp / "sub.pt"
    torch.save({"evil": Evil(_marker(tmp))}, out)
    return out


def _too_large(base: Path, tmp: Path) -> Path:
    out = tmp / "big.json"
    with open(out, "wb") as f:  # sparse: no disk used
        f.truncate(MAX_SUBMISSION_BYTES + 1)
    return out


def _deep(base: Path, tmp: Path) -> Path:
    out = tmp / "deep.json"
    out.write_text('{"method": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return out


def _utf8_then_latin1(base: Path, tmp: Path) -> Path:
    data = json.loads(base.read_text())
    data["method"]["display_name"] = "Caf@"
    out = tmp / "sub.json"
    out.write_bytes(json.dumps(data).encode().replace(b"Caf@", b"Caf\xe9"))
    return out


def _utf16(base: Path, tmp: Path) -> Path:
    out = tmp / "sub.json"
    out.write_bytes(base.read_text().encode("utf-16"))
    return out


def _pickled(proto: int) -> Callable[[Path, Path], bytes]:
    return lambda base, tmp: pickle.dumps(Evil(_marker(tmp)), protocol=proto)


def _blob(kind: str) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        raw = pickle.dumps(Evil(Path("/tmp/never")), protocol=4)
        text = {"b64": base64.b64encode(raw).decode(), "hex": raw.hex(),
                "latin1": raw.decode("latin-1")}[kind]
        if kind == "hex":
            d["method"]["description"] = text
        else:
            d["method"]["meta"]["state"] = text
    return edit


def _set(path: tuple[str, ...], value: object) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        obj = d
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value
    return edit


def _drop_weight(d: dict) -> None:
    _sample_task(d)["weights"][0][0].pop()


def _drop_sample(d: dict) -> None:
    _sample_task(d)["weights"][1].pop()


def _drop_epoch(d: dict) -> None:
    d["tasks"][0]["items"]["epoch"].pop()


def _drop_prediction(d: dict) -> None:
    d["tasks"][2]["items"]["predictions"][1].pop()


def _unknown_item(d: dict) -> None:
    d["tasks"][0]["items"]["model_id"][0] = "m999"


def _missing_task(d: dict) -> None:
    d["tasks"] = [t for t in d["tasks"] if t["task"] != "digits-generation"]


def _task_version(d: dict) -> None:
    d["tasks"][0]["task_version"] = 7


def _split_hash(d: dict) -> None:
    d["zoo"]["split_hashes"]["test"] = "sha256:" + "1" * 64


# (id, board: "props" | "full", make(base, tmp) -> path, error, message)
CASES: list[tuple[str, str, Callable[[Path, Path], Path], type[Exception], str]] = [
    ("pickle-protocol-4", "props", _bytes("sub.json", _pickled(4)), UnsafeSubmissionError,
     "is a Python pickle"),
    ("pickle-protocol-0", "props", _bytes("sub.json", _pickled(0)), UnsafeSubmissionError,
     "is a Python pickle"),
    ("pkl-suffix", "props", _json_edit(lambda d: None, name="sub.pkl"), UnsafeSubmissionError,
     "looks like a pickle"),
    ("torch-checkpoint", "props", _torch_file, UnsafeSubmissionError, "torch checkpoint"),
    ("pickle-blob-base64", "props", _json_edit(_blob("b64")), InvalidSubmissionError,
     "looks like a pickled Python object"),
    ("pickle-blob-hex", "props", _json_edit(_blob("hex")), InvalidSubmissionError,
     "method.description holds what looks like a pickled"),
    ("pickle-blob-latin1", "props", _json_edit(_blob("latin1")), InvalidSubmissionError,
     "looks like a pickled Python object"),
    ("zip-traversal", "props", _bytes("sub.zip", _zip), UnsafeSubmissionError,
     "looks like an archive"),
    ("zip-named-json", "props", _bytes("sub.json", _zip), UnsafeSubmissionError,
     "is a zip archive, not JSON; archives are not unpacked"),
    ("too-large", "props", _too_large, UnsafeSubmissionError,
     f"over the limit of {MAX_SUBMISSION_BYTES:,} bytes"),
    ("nan", "props", _json_edit(lambda d: _pred(d, PLACEHOLDER),
                                raw=lambda t: t.replace(str(PLACEHOLDER), "NaN")),
     InvalidSubmissionError, "contains NaN: predictions and scores must be finite"),
    ("minus-infinity", "props", _json_edit(lambda d: _pred(d, PLACEHOLDER),
                                           raw=lambda t: t.replace(str(PLACEHOLDER),
                                                                   "-Infinity")),
     InvalidSubmissionError, "contains -Infinity"),
    ("overflow-to-inf", "props", _json_edit(lambda d: _pred(d, PLACEHOLDER),
                                            raw=lambda t: t.replace(str(PLACEHOLDER),
                                                                    "1e999")),
     InvalidSubmissionError, "1e999 \\(overflows to inf\\)"),
    ("wrong-length-predictions", "props", _json_edit(_drop_prediction), InvalidSubmissionError,
     "wrong lengths: seed 1 has 11 predictions for 12 items"),
    ("wrong-length-epochs", "props", _json_edit(_drop_epoch), InvalidSubmissionError,
     "wrong lengths: 12 model_id values but 11 epochs"),
    ("wrong-length-weights", "full", _json_edit(_drop_weight), InvalidSubmissionError,
     "wrong lengths: seed 0 has 2 samples of \\[2463, 2464\\] parameters"),
    ("wrong-sample-count", "full", _json_edit(_drop_sample), InvalidSubmissionError,
     "seed 1 has 1 samples"),
    ("wrong-zoo-hash", "props", _json_edit(_set(("zoo", "content_hash"), "sha256:" + "0" * 64)),
     ZooVersionError, "content hash 000000000000"),
    ("wrong-split-hash", "props", _json_edit(_split_hash), ZooVersionError,
     "test split hash 111111111111"),
    ("wrong-zoo-version", "props", _json_edit(_set(("zoo", "version"), "2.0.0")),
     ZooVersionError, "zoo digits-cnn_s v2.0.0 \\(board: digits-cnn_s v1.0.0\\)"),
    ("non-utf8", "props", _utf8_then_latin1, InvalidSubmissionError,
     "is not UTF-8 text: invalid byte 0xe9"),
    ("utf16", "props", _utf16, InvalidSubmissionError, "is not UTF-8 text"),
    ("not-json", "props", _bytes("sub.json", lambda b, t: b"<html>hi</html>"),
     InvalidSubmissionError, "is not valid JSON"),
    ("deep-nesting", "props", _deep, InvalidSubmissionError, "nested"),
    ("duplicate-key", "props",
     _json_edit(lambda d: None, raw=lambda t: t.replace('{"format":', '{"suite": "x", "format":',
                                                        1)),
     InvalidSubmissionError, "has the key 'suite' twice"),
    ("extra-field", "props", _json_edit(_set(("run_this",), "rm -rf /")), InvalidSubmissionError,
     "run_this: Extra inputs are not permitted"),
    ("javascript-url", "props", _json_edit(_set(("method", "url"), "javascript:alert(1)")),
     InvalidSubmissionError, "method.url: Value error, must be an http:// or https:// URL"),
    ("bidi-override-name", "props",
     _json_edit(_set(("method", "display_name"), "good\u202eevil")), InvalidSubmissionError,
     "control / format characters"),
    ("bool-as-number", "props", _json_edit(lambda d: _pred(d, True)), InvalidSubmissionError,
     "does not match the submission schema"),
    ("string-for-regression", "props", _json_edit(lambda d: d["tasks"][0]["items"].update(
        predictions=[["0.5"] * 12, ["0.5"] * 12])), InvalidSubmissionError,
     "regression predictions must be numbers"),
    ("unknown-item", "props", _json_edit(_unknown_item), InvalidSubmissionError,
     "not healthy test checkpoints of the board's zoo"),
    ("missing-task", "full", _json_edit(_missing_task), IncompleteSubmissionError,
     "missing task\\(s\\) digits-generation"),
    ("task-version", "props", _json_edit(_task_version), InvalidSubmissionError,
     "submission has version 7"),
    ("long-name", "props", _json_edit(_set(("method", "display_name"), "x" * 5000)),
     InvalidSubmissionError, "at most 100 characters"),
]


@pytest.mark.parametrize(("make", "board_kind", "error", "message"),
                         [pytest.param(c[2], c[1], c[3], c[4], id=c[0]) for c in CASES])
def test_hostile_submission_rejected(
    lb_env: LbEnv,
    tmp_path: Path,
    make: Callable[[Path, Path], Path],
    board_kind: str,
    error: type[Exception],
    message: str,
) -> None:
    board = lb_env.board_copy(board_kind, tmp_path / "board")
    before = snapshot(board)
    work = tmp_path / "work"
    work.mkdir()
    # a valid submission that is not on the board yet, turned hostile
    base = (lb_env.subs["combo-flat"] if board_kind == "full" else
            variant(lb_env.subs["ws"], tmp_path / "fresh.json", "fresh-method"))
    path = make(base, work)
    with pytest.raises(error, match=message) as info:
        add_submission(submission=path, board=board, zoo=lb_env.zoo)
    assert isinstance(info.value, SubmissionRejected)
    assert len(str(info.value)) < 1200  # short and readable, not a dump
    assert snapshot(board) == before
    assert not _marker(work).exists() and not Path("/tmp/never").exists()
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/abs-evil.txt").exists()


def test_the_fresh_base_submission_is_valid(lb_env: LbEnv, tmp_path: Path) -> None:
    """The hostile cases above fail because of their edit, not their base."""
    board = lb_env.board_copy("props", tmp_path / "board")
    base = variant(lb_env.subs["ws"], tmp_path / "fresh.json", "fresh-method")
    entry = add_submission(submission=base, board=board, zoo=lb_env.zoo)
    assert entry.method.name == "fresh-method"


def test_looks_pickled_has_no_false_positives_on_ordinary_text() -> None:
    ordinary = ["relu", "cnn_s-digits", "sha256:" + "80" * 32, "8003" + "ab" * 18,
                "gASV is how a pickle starts", "Weights statistics + ridge.",
                "I1\nnot a pickle", base64.b64encode(b"plain bytes, not pickled.").decode()]
    assert not any(looks_pickled(s) for s in ordinary)
    for proto in range(6):
        raw = pickle.dumps({"a": [1, 2]}, protocol=proto)
        assert looks_pickled(base64.b64encode(raw).decode()) and looks_pickled(raw.hex())
