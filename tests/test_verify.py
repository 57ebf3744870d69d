"""Issue 25: a pinned result means the pinned data.

Every entry point that reads a zoo to score, train, embed, sample, publish or submit checks its
shards against ``zoo.json`` first: bytes flipped inside the weight payload of a shard (the
Arrow stream still parses) stop it with the shard named and nothing written. A second check
hashes nothing (a spy on the hash function), any change of a shard's (size, mtime, ctime,
inode, device) re-hashes it, the cache cannot vouch for other bytes, and ``--no-verify``
results are marked unverified and claim no pin.

One tiny synthetic zoo (real ``ZooWriter``, no training) and one tiny SANE run are built per
module and copied per test; the held-out board cases reuse the session's ``ho_env``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

import benchmarks
import modelzoo.storage.verify as verify_mod
from benchmarks.cli import cli as bench_cli
from benchmarks.errors import ResultSchemaError, UnverifiedResultError
from benchmarks.leaderboard import make_submission
from benchmarks.leaderboard.heldout import HELDOUT_DIR
from benchmarks.registry import TASKS
from benchmarks.results import load_result, parse_result
from modelzoo.cli import main as zoo_cli
from modelzoo.errors import CorruptZooError, ShardChecksumError
from modelzoo.storage import SPLITS, load_zoo, read_manifest
from modelzoo.storage.verify import VERIFIED_NAME, check_shards, clear_memo, verify_zoo
from sane.cli import main as sane_cli
from tests.heldout_fixtures import HoEnv
from tests.leaderboard_fixtures import snapshot
from tests.merge_fixtures import make_synthetic_zoo

pytestmark = pytest.mark.usefixtures("single_thread")
ROOT = Path(__file__).resolve().parents[1]
SUITE = "digits-properties-v1"
SANE_ARGS = ["--d-model", "16", "--n-heads", "2", "--n-layers", "1", "--latent-dim", "4",
             "--token-size", "32", "--window-size", "8", "--epochs", "1", "--batch-size", "8"]


@dataclass
class Base:
    """The module's intact zoo, a SANE run trained on it, results and a submission."""

    zoo: Path
    run: Path
    results: Path
    submission: Path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    root = tmp_path_factory.mktemp("verify")
    zoo = root / "zoo"
    make_synthetic_zoo(zoo, arch="cnn_s", source="digits", in_shape=(1, 8, 8), models=12,
                       epochs=1, name="digits-cnn_s", split_seed=3)  # 7 / 2 / 3 models
    assert {f.split for f in read_manifest(zoo).files if f.num_rows} == set(SPLITS)
    res = CliRunner().invoke(sane_cli, ["train", "--zoo", str(zoo), "--out", str(root / "run"),
                                        "--quiet", *SANE_ARGS], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    results, sub = root / "results", root / "sub.json"
    benchmarks.evaluate(method="chance", zoo=zoo, suite=SUITE, seeds=1, out=results,
                        save_predictions=True, bootstrap=None)
    make_submission(results=results, zoo=zoo, suite=SUITE, out=sub)
    return Base(zoo=zoo, run=root / "run", results=results, submission=sub)


def copy_zoo(src: Path, dst: Path, *, age: bool = False) -> Path:
    """A copy of ``src``; ``age``: older than the racy margin of the ``spy`` fixture."""
    shutil.copytree(src, dst)
    if age:
        time.sleep(2 * RACY_TEST_NS / 1e9)
    return dst


def flip_weight_bytes(zoo: Path, split: str) -> str:
    """Flip the lowest mantissa bit of four float32 weights inside the weight payload of the
    first shard of ``split`` (same size, in place); return the shard's path in zoo.json."""
    f = next(f for f in read_manifest(zoo).files if f.split == split and f.num_rows)
    path = zoo / f.path
    data = bytearray(path.read_bytes())
    before = pa.ipc.open_stream(pa.BufferReader(bytes(data))).read_all()
    values = before.column("weights").chunk(0).values.to_numpy(zero_copy_only=False)
    at = data.find(values[:16].tobytes())  # the start of the first batch's weight values
    assert at > 0
    for k in range(4, 8):
        data[at + 4 * k] ^= 0x01  # little endian: the lowest mantissa byte
    path.write_bytes(bytes(data))
    after = pa.ipc.open_stream(pa.BufferReader(bytes(data))).read_all()  # Arrow still parses
    new = after.column("weights").chunk(0).values.to_numpy(zero_copy_only=False)
    assert after.num_rows == before.num_rows and np.isfinite(new).all()
    assert (new != values).sum() == 4
    return f.path


# --------------------------------------------------------------------------- entry points

@dataclass
class Case:
    """One entry point: its CLI, arguments and the outputs it must not leave behind."""

    cli: object
    args: Callable[[Base, Path, Path], list[str]]
    outputs: tuple[str, ...] = ("out",)


def _reproduction(tmp: Path, monkeypatch: pytest.MonkeyPatch, zoo: Path) -> None:
    """A tiny registered reproduction whose (already built) zoo is ``zoo``."""
    import benchmarks.reproduce as rp
    import modelzoo.hub.cli as hub_cli

    rep = rp.Reproduction(suite="digits-v1", cards={"digits-cnn_s": "cards/digits-cnn_s.yaml"},
                          sane_config="sane/configs/digits-cnn_s.yaml", sane_zoo="digits-cnn_s",
                          methods=("chance",), seeds=1,
                          quick={"models": 12, "epochs": 1, "sane_epochs": 1, "seeds": 1})
    monkeypatch.setitem(rp.REPRODUCTIONS, "digits-v1", rep)
    # the build resumes a finished zoo as it is: what was damaged since is not rebuilt
    monkeypatch.setattr(hub_cli, "build_recipe_file", lambda _card, *, out, **_kw:
                        read_manifest(out))
    shutil.move(zoo, ensure(tmp / "repro" / "zoos") / "digits-cnn_s")


def ensure(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


CASES: dict[str, Case] = {
    "bench run": Case(bench_cli, lambda b, z, t: [
        "run", "--task", "digits-test-acc", "--method", "chance", "--zoo", z, "--seeds", "1",
        "--out", t / "out"]),
    "bench reproduce": Case(bench_cli, lambda b, z, t: [
        "reproduce", "digits-v1", "--out", t / "repro", "--quick"],
        ("repro/results", "repro/report.md", "repro/timings.json", "repro/work")),
    "bench submit": Case(bench_cli, lambda b, z, t: [
        "submit", "--results", b.results, "--zoo", z, "--suite", SUITE, "--out",
        t / "out" / "sub.json"]),
    "bench leaderboard add": Case(bench_cli, lambda b, z, t: [
        "leaderboard", "add", b.submission, "--board", t / "out", "--zoo", z]),
    "bench leaderboard init": Case(bench_cli, lambda b, z, t: [
        "leaderboard", "init", "--recipe", ROOT / "cards" / "digits-cnn_s.yaml", "--board",
        t / "out", "--view", t / "view", "--public-zoo", z], ("out", "view")),
    "sane train": Case(sane_cli, lambda b, z, t: [
        "train", "--zoo", z, "--out", t / "out", "--quiet", *SANE_ARGS]),
    "sane embed": Case(sane_cli, lambda b, z, t: [
        "embed", "--run", b.run, "--zoo", z, "--out", t / "out", "--quiet"]),
    "sane sample": Case(sane_cli, lambda b, z, t: [
        "sample", "--run", b.run, "--zoo", z, "--out", t / "out", "-n", "2"]),
    "zoo publish": Case(zoo_cli, lambda b, z, t: ["publish", z, "--out", t / "out"]),
    "zoo merge": Case(zoo_cli, lambda b, z, t: ["merge", z, "--out", t / "out"]),
    "zoo align": Case(zoo_cli, lambda b, z, t: ["align", z, "--out", t / "out",
                                               "--no-progress"]),
}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("entry", list(CASES))
def test_every_entry_point_refuses_a_corrupt_shard_and_writes_nothing(
    base: Base, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str, split: str
) -> None:
    case = CASES[entry]
    zoo = copy_zoo(base.zoo, tmp_path / "zoo")
    shard = flip_weight_bytes(zoo, split)
    if entry == "bench reproduce":
        _reproduction(tmp_path, monkeypatch, zoo)
        zoo = tmp_path / "repro" / "zoos" / "digits-cnn_s"
    clear_memo()
    res = CliRunner().invoke(case.cli, [str(a) for a in case.args(base, zoo, tmp_path)])
    assert res.exit_code == 2, res.output
    assert f"shard {shard} of zoo {zoo} is corrupt: sha256" in res.output, res.output
    assert "--no-verify" in res.output
    for out in case.outputs:
        assert not (tmp_path / out).exists(), f"{entry} left {out} behind"


@pytest.mark.parametrize("split", SPLITS)
def test_heldout_board_add_and_verify_refuse_corrupt_zoos(
    ho_env: HoEnv, tmp_path: Path, split: str
) -> None:
    """``bench leaderboard add`` on a board whose private zoo is damaged, and ``bench
    leaderboard verify`` with a damaged public zoo: refused, the board byte-for-byte as it
    was (the verification cache aside)."""
    board = ho_env.copy("props", tmp_path / "board")
    index = json.loads((board / "board.json").read_text())
    shard = flip_weight_bytes(board / HELDOUT_DIR, split)
    before = snapshot(board)
    res = CliRunner().invoke(bench_cli, ["leaderboard", "add", str(ho_env.subs["chance"]),
                                         "--board", str(board)])
    assert res.exit_code == 2 and "rejected, the board is unchanged" in res.output
    assert f"shard {shard} of zoo {board / HELDOUT_DIR} is corrupt" in res.output, res.output
    assert snapshot(board) == before
    shutil.rmtree(board)
    board = ho_env.copy("props", tmp_path / "board")
    public = copy_zoo(ho_env.public, tmp_path / "public")
    shard = flip_weight_bytes(public, split)
    before = snapshot(board)
    entry = index["entries"][0]["id"]
    res = CliRunner().invoke(bench_cli, ["leaderboard", "verify", entry, "--board", str(board),
                                         "--method", "chance", "--zoo", str(public)])
    assert res.exit_code == 2 and "not verified, the board is unchanged" in res.output
    assert f"shard {shard} of zoo {public} is corrupt" in res.output, res.output
    assert snapshot(board) == before


def test_load_zoo_verifies_only_the_splits_it_reads(base: Base, tmp_path: Path) -> None:
    zoo = copy_zoo(base.zoo, tmp_path / "zoo")
    shard = flip_weight_bytes(zoo, "test")
    assert len(load_zoo(zoo, "train")) > 0
    with pytest.raises(ShardChecksumError, match="corrupt") as e:
        load_zoo(zoo, "test")
    assert e.value.shard == shard and e.value.zoo == str(zoo)
    with pytest.raises(ShardChecksumError):
        load_zoo(zoo)
    assert len(load_zoo(zoo, verify=False)["test"]) > 0  # the opt-out reads it as it is


# --------------------------------------------------------------------------- the cache

#: The racy margin in the cache tests (timestamps tick at 1-10 ms on Linux file systems).
RACY_TEST_NS = 20_000_000


@pytest.fixture()
def spy(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file the verifier hashes (a spy on its hash function); a 20 ms racy margin
    (instead of 2 s) so that copies made by :func:`copy_zoo` with ``age`` get recorded."""
    hashed: list[Path] = []
    real = verify_mod.file_sha256

    def counting(path: Path, *args: object, **kwargs: object) -> str:
        hashed.append(Path(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(verify_mod, "file_sha256", counting)
    monkeypatch.setattr(verify_mod, "RACY_NS", RACY_TEST_NS)
    clear_memo()
    return hashed


def test_a_second_run_hashes_nothing(base: Base, tmp_path: Path, spy: list[Path]) -> None:
    zoo = copy_zoo(base.zoo, tmp_path / "zoo", age=True)
    (zoo / VERIFIED_NAME).unlink(missing_ok=True)
    n = len(read_manifest(zoo).files)
    run = ["run", "--task", "digits-test-acc", "--method", "weight-stats-linear", "--zoo",
           str(zoo), "--seeds", "1", "--out", str(tmp_path / "res")]
    res = CliRunner().invoke(bench_cli, run)
    assert res.exit_code == 0, res.output
    assert len(spy) == n and (zoo / VERIFIED_NAME).is_file()  # each shard hashed once
    spy.clear()
    assert CliRunner().invoke(bench_cli, run).exit_code == 0  # same process: the memo
    assert spy == []
    clear_memo()  # as a new process: only .verified.json vouches
    assert CliRunner().invoke(bench_cli, run).exit_code == 0
    assert spy == []
    r = check_shards(zoo)
    assert (r.files, r.hashed, r.hashed_bytes) == (n, 0, 0)
    assert check_shards(zoo, use_cache=False).hashed == n  # zoo validate: every shard


def _touch(p: Path) -> None:
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - 1_000_000_000))


def _rewrite_same_bytes_forged_mtime(p: Path) -> None:
    st = p.stat()
    p.write_bytes(p.read_bytes())
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # ctime moves on regardless


def _replace_same_bytes_forged_mtime(p: Path) -> None:
    st = p.stat()
    tmp = p.with_name(p.name + ".new")
    tmp.write_bytes(p.read_bytes())
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, p)  # a new inode


@pytest.mark.parametrize("change", [_touch, _rewrite_same_bytes_forged_mtime,
                                    _replace_same_bytes_forged_mtime])
def test_any_change_of_the_key_rehashes(base: Base, tmp_path: Path, spy: list[Path],
                                        change: Callable[[Path], None]) -> None:
    zoo = copy_zoo(base.zoo, tmp_path / "zoo", age=True)
    verify_zoo(zoo)
    clear_memo()
    spy.clear()
    f = read_manifest(zoo).files[0]
    change(zoo / f.path)
    time.sleep(2 * RACY_TEST_NS / 1e9)  # past the racy margin: the new key gets recorded
    r = check_shards(zoo)
    assert spy == [zoo / f.path] and r.hashed == 1 and r.cache_written
    spy.clear()
    clear_memo()
    assert check_shards(zoo).hashed == 0  # recorded again under its new key


def _forged_cache_for_other_bytes(zoo: Path, rel: str) -> None:
    """A cache entry for the corrupted shard's current key and its *actual* sha256."""
    p = zoo / rel
    st = p.stat()
    doc = json.loads((zoo / VERIFIED_NAME).read_text())
    doc["files"][rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                         "ctime_ns": st.st_ctime_ns, "inode": st.st_ino, "device": st.st_dev,
                         "sha256": verify_mod.file_sha256(p)}
    (zoo / VERIFIED_NAME).write_text(json.dumps(doc))


def _garbage_cache(zoo: Path, rel: str) -> None:
    (zoo / VERIFIED_NAME).write_bytes(b"\x80garbage{")


@pytest.mark.parametrize("cache", [None, _forged_cache_for_other_bytes, _garbage_cache])
def test_the_cache_cannot_vouch_for_other_bytes(base: Base, tmp_path: Path, spy: list[Path],
                                                cache: Callable[[Path, str], None] | None
                                                ) -> None:
    """In-place corruption with the mtime restored, plus a forged or broken cache: the
    shard is re-hashed and refused."""
    zoo = copy_zoo(base.zoo, tmp_path / "zoo", age=True)
    verify_zoo(zoo)
    clear_memo()
    f = read_manifest(zoo).files[0]
    st = (zoo / f.path).stat()
    shard = flip_weight_bytes(zoo, f.split)
    os.utime(zoo / f.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    if cache is not None:
        cache(zoo, shard)
    spy.clear()
    with pytest.raises(ShardChecksumError, match=f"shard {shard} .* is corrupt"):
        verify_zoo(zoo)
    assert zoo / shard in spy


def test_a_copied_cache_matches_nothing(base: Base, tmp_path: Path, spy: list[Path]) -> None:
    zoo = copy_zoo(base.zoo, tmp_path / "zoo", age=True)
    verify_zoo(zoo)
    copy = tmp_path / "copy"
    shutil.copytree(zoo, copy)  # cp -a keeps mtimes, not inodes or ctimes
    assert (copy / VERIFIED_NAME).read_bytes() == (zoo / VERIFIED_NAME).read_bytes()
    spy.clear()
    assert check_shards(copy).hashed == len(read_manifest(copy).files)


def test_read_only_zoo_is_hashed_not_written(base: Base, tmp_path: Path,
                                             spy: list[Path]) -> None:
    zoo = copy_zoo(base.zoo, tmp_path / "zoo", age=True)
    (zoo / VERIFIED_NAME).unlink(missing_ok=True)
    mode = zoo.stat().st_mode
    zoo.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)  # r-x (even as root)
    try:
        r = check_shards(zoo)
        assert r.hashed == r.files > 0 and not r.cache_written
        assert not (zoo / VERIFIED_NAME).exists() and not list(zoo.glob(".*tmp*"))
        spy.clear()
        assert check_shards(zoo).hashed == 0  # the memo, within one process
        clear_memo()
        assert check_shards(zoo).hashed == r.files  # a new process hashes again
    finally:
        zoo.chmod(mode)


def test_racy_shards_are_not_recorded(base: Base, tmp_path: Path) -> None:
    """A shard changed within RACY_NS of its hashing is hashed again next time (its
    timestamp could be shared with a later same-size rewrite)."""
    zoo = copy_zoo(base.zoo, tmp_path / "zoo")  # just written
    (zoo / VERIFIED_NAME).unlink(missing_ok=True)
    clear_memo()
    r = check_shards(zoo)
    assert r.hashed == r.files and not r.cache_written
    assert check_shards(zoo).hashed == r.files


def test_manifest_paths_cannot_leave_the_zoo(base: Base, tmp_path: Path) -> None:
    zoo = copy_zoo(base.zoo, tmp_path / "zoo")
    raw = json.loads((zoo / "zoo.json").read_text())
    raw["files"][0]["path"] = "../../etc/passwd"
    (zoo / "zoo.json").write_text(json.dumps(raw))
    with pytest.raises(CorruptZooError, match="outside the zoo folder"):
        verify_zoo(zoo)
    with pytest.raises(CorruptZooError, match="outside the zoo folder"):
        load_zoo(zoo, verify=False)


# --------------------------------------------------------------------------- --no-verify

def test_no_verify_results_are_marked_and_claim_no_pin(
    base: Base, tmp_path: Path, spy: list[Path]
) -> None:
    zoo = copy_zoo(base.zoo, tmp_path / "zoo", age=True)
    task = TASKS.get("digits-test-acc")
    assert task.zoo.content_hash is None  # pinned by name and version: this zoo matches
    (ok,) = benchmarks.evaluate(method="weight-stats-linear", zoo=zoo, tasks=[task], seeds=1,
                                out=tmp_path / "ok", bootstrap=None)
    assert ok.zoo.verified is True and ok.zoo.matches_pin is True
    spy.clear()
    clear_memo()
    shard = flip_weight_bytes(zoo, "train")  # --no-verify reads even a damaged zoo
    res = CliRunner().invoke(bench_cli, [
        "run", "--task", "digits-test-acc", "--method", "weight-stats-linear", "--zoo",
        str(zoo), "--seeds", "1", "--out", str(tmp_path / "nv"), "--no-verify"])
    assert res.exit_code == 0, res.output
    assert "marked unverified, no pin claimed" in res.output
    assert spy == []  # nothing hashed, not even by the method's own zoo reads
    (path,) = (tmp_path / "nv").rglob("*.json")
    nv = load_result(path)
    assert nv.zoo.verified is False and nv.zoo.matches_pin is False
    assert nv.schema_version == 4
    data = json.loads(path.read_text())
    data["zoo"]["matches_pin"] = True  # a hand-edited claim
    with pytest.raises(ResultSchemaError, match="matches_pin cannot be true"):
        parse_result(data)
    with pytest.raises(ShardChecksumError, match=f"shard {shard}"):
        benchmarks.evaluate(method="chance", zoo=zoo, tasks=[task], seeds=1, bootstrap=None)


def test_submit_refuses_unverified_results(base: Base, tmp_path: Path) -> None:
    benchmarks.evaluate(method="chance", zoo=base.zoo, suite=SUITE, seeds=1,
                        out=tmp_path / "res", save_predictions=True, bootstrap=None,
                        verify=False)
    with pytest.raises(UnverifiedResultError, match="made with --no-verify"):
        make_submission(results=tmp_path / "res", zoo=base.zoo, suite=SUITE,
                        out=tmp_path / "sub.json")
    assert not (tmp_path / "sub.json").exists()


def test_results_of_schema_3_migrate_as_not_recorded(base: Base) -> None:
    (path, *_) = sorted(base.results.rglob("*.json"))
    data = json.loads(path.read_text())
    assert data["schema_version"] == 4 and data["zoo"]["verified"] is True
    data["schema_version"] = 3
    del data["zoo"]["verified"]
    old = parse_result(data)
    assert old.schema_version == 4 and old.zoo.verified is None and old.zoo.matches_pin
    with pytest.raises(UnverifiedResultError, match="predates shard verification"):
        benchmarks.results.require_verified([old])
