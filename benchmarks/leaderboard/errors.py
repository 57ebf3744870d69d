"""Errors of the leaderboard (all user-facing :class:`~modelzoo.errors.ZooError` subclasses)."""

from __future__ import annotations

from benchmarks.errors import BenchmarkError


class LeaderboardError(BenchmarkError):
    """A leaderboard operation cannot be done as asked (the message says why)."""


class SubmissionRejected(LeaderboardError):
    """A submission is refused; the board is left unchanged."""


class UnsafeSubmissionError(SubmissionRejected):
    """The file is not a plain JSON submission (pickle, archive, binary, too large...)."""


class InvalidSubmissionError(SubmissionRejected):
    """The JSON does not match the submission schema (or holds NaN / inf / a pickled blob)."""


class ZooVersionError(SubmissionRejected):
    """The submission is for another zoo version, content or split than the board's zoo."""


class IncompleteSubmissionError(SubmissionRejected):
    """A task of the suite, or a test item of a task, has no prediction."""


class DuplicateSubmissionError(SubmissionRejected):
    """The same submission, predictions, or method version is already on the board."""


class ClaimMismatchError(SubmissionRejected):
    """Claimed scores differ from the recomputed ones (only raised in strict mode)."""


class SubmissionLimitError(SubmissionRejected):
    """The submission's authors already have as many entries waiting for the next release
    as the board takes per author."""
