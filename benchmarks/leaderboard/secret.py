"""The key a held-out board maps its opaque row ids with (``secret.key`` in the board folder).

Its own module so that the board (which opens held-out zoos) and the held-out board builder
(which reads the board index) share it without importing each other.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.leaderboard.errors import LeaderboardError

__all__ = ["SECRET_NAME", "read_secret"]

SECRET_NAME = "secret.key"


def read_secret(board: str | Path) -> bytes:
    """The board's row-id key.

    Raises:
        LeaderboardError: the key file is missing (the board cannot map its rows).
    """
    path = Path(board) / SECRET_NAME
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        raise LeaderboardError(f"{path} is missing or invalid: a held-out board needs the key "
                               "its view was made with") from None
