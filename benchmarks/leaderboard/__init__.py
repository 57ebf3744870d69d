"""Leaderboard: a private held-out zoo published only as a label-free view, submissions
packaged from ``bench run --heldout`` output, validated, re-scored against the private labels,
recorded atomically (each submitter sees the scores of a secret feedback half of the rows;
the ranking half's scores come out only at a release, through the Ladder:
:mod:`benchmarks.leaderboard.ranking`), optionally verified by re-running the method,
rendered (Markdown, CSV, static HTML) and published as a Hub dataset.

API: :func:`init_board`, :func:`make_submission`, :func:`add_submission`,
:func:`add_submissions`, :func:`release_board`, :func:`verify_entry`, :func:`load_board`,
:func:`render_board`, :func:`publish_board`; commands: ``bench submit``, ``bench leaderboard
init|view|add|release|verify|render|publish``.
"""

from benchmarks.leaderboard.board import (
    add_submission,
    add_submissions,
    load_board,
    release_board,
)
from benchmarks.leaderboard.errors import (
    ClaimMismatchError,
    DuplicateSubmissionError,
    IncompleteSubmissionError,
    InvalidSubmissionError,
    LeaderboardError,
    SubmissionLimitError,
    SubmissionRejected,
    UnsafeSubmissionError,
    ZooVersionError,
)
from benchmarks.leaderboard.heldout import init_board, make_view
from benchmarks.leaderboard.safety import read_submission
from benchmarks.leaderboard.schema import BoardEntry, Submission
from benchmarks.leaderboard.submit import make_submission
from benchmarks.leaderboard.verify import VerificationError, verify_entry

__all__ = [
    "BoardEntry",
    "ClaimMismatchError",
    "DuplicateSubmissionError",
    "IncompleteSubmissionError",
    "InvalidSubmissionError",
    "LeaderboardError",
    "Submission",
    "SubmissionLimitError",
    "SubmissionRejected",
    "UnsafeSubmissionError",
    "VerificationError",
    "ZooVersionError",
    "add_submission",
    "add_submissions",
    "init_board",
    "load_board",
    "make_submission",
    "make_view",
    "read_submission",
    "release_board",
    "verify_entry",
]
