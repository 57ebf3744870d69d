"""Leaderboard: submissions packaged from ``bench run`` output, validated, re-scored against a
held-out zoo, recorded atomically, rendered (Markdown, CSV, static HTML) and published as a
Hub dataset.

API: :func:`make_submission`, :func:`add_submission`, :func:`load_board`,
:func:`render_board`, :func:`publish_board`; commands: ``bench submit``,
``bench leaderboard add|render|publish``.
"""

from benchmarks.leaderboard.board import add_submission, load_board
from benchmarks.leaderboard.errors import (
    ClaimMismatchError,
    DuplicateSubmissionError,
    IncompleteSubmissionError,
    InvalidSubmissionError,
    LeaderboardError,
    SubmissionRejected,
    UnsafeSubmissionError,
    ZooVersionError,
)
from benchmarks.leaderboard.safety import read_submission
from benchmarks.leaderboard.schema import BoardEntry, Submission
from benchmarks.leaderboard.submit import make_submission

__all__ = [
    "BoardEntry",
    "ClaimMismatchError",
    "DuplicateSubmissionError",
    "IncompleteSubmissionError",
    "InvalidSubmissionError",
    "LeaderboardError",
    "Submission",
    "SubmissionRejected",
    "UnsafeSubmissionError",
    "ZooVersionError",
    "add_submission",
    "load_board",
    "make_submission",
    "read_submission",
]
