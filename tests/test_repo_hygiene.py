"""Repository hygiene: no wheels, archives or large files are tracked by git.

Binary artefacts in the repository grow every clone for ever and cannot be reviewed. Data
files a test or a card needs are small; a file over the limit must be named in
:data:`ALLOWED_LARGE` with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Tracked files may not be larger than this many bytes unless allow-listed.
MAX_BYTES = 1 << 20

#: Tracked files allowed above :data:`MAX_BYTES`: ``path -> reason``.
ALLOWED_LARGE: dict[str, str] = {}

#: Suffixes of packaged or archived artefacts, which never belong in the repository.
FORBIDDEN_SUFFIXES = (".whl", ".egg", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz",
                      ".gz", ".bz2", ".xz", ".7z", ".rar", ".pt", ".pth", ".ckpt", ".pkl",
                      ".pickle", ".npy", ".npz", ".arrow", ".parquet", ".safetensors")


def tracked_files() -> list[str]:
    """Paths git tracks in this checkout (relative, POSIX)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], check=True,
                         capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p]


def offenders(paths: list[str], root: Path = ROOT) -> list[str]:
    """Tracked paths that are artefacts by suffix, or larger than the limit and not allowed."""
    bad = []
    for p in paths:
        if p.lower().endswith(FORBIDDEN_SUFFIXES):
            bad.append(f"{p}: a packaged/archived/binary artefact")
            continue
        f = root / p
        if f.is_file() and f.stat().st_size > MAX_BYTES and p not in ALLOWED_LARGE:
            bad.append(f"{p}: {f.stat().st_size:,} bytes > {MAX_BYTES:,}")
    return bad


def test_no_wheels_archives_or_large_files_are_tracked() -> None:
    bad = offenders(tracked_files())
    assert not bad, "remove these from git (or allow-list a data file with its reason):\n" + \
        "\n".join(bad)


def test_the_check_catches_a_wheel_and_a_large_file(tmp_path: Path) -> None:
    (tmp_path / "x.whl").write_bytes(b"PK")
    (tmp_path / "big.txt").write_bytes(b"0" * (MAX_BYTES + 1))
    (tmp_path / "ok.py").write_text("x = 1\n")
    bad = offenders(["x.whl", "big.txt", "ok.py"], root=tmp_path)
    assert [b.split(":")[0] for b in bad] == ["x.whl", "big.txt"]
