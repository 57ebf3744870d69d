"""Errors of the benchmark package (all user-facing, all :class:`modelzoo.errors.ZooError`)."""

from __future__ import annotations

from modelzoo.errors import ZooError


class BenchmarkError(ZooError):
    """A benchmark cannot run as asked (the message says why and what to do)."""


class MethodError(BenchmarkError):
    """A method cannot be loaded or does not follow the method protocol."""


class ZooMismatchError(BenchmarkError):
    """The zoo given does not match the zoo a task is pinned to."""


class ResultSchemaError(BenchmarkError):
    """A results file cannot be read with this version of the results schema."""


class TaskNotApplicableError(BenchmarkError):
    """A task cannot be scored on the zoo given (e.g. the zoo does not vary its target)."""


class UnverifiedResultError(BenchmarkError):
    """A result was made without verifying its zoo's shards, where a verified one is needed."""


class OutputsError(BenchmarkError):
    """Saved per-item outputs (predictions, weight samples) do not fit the task or the rows
    they are re-scored on (wrong rows, counts, types or shapes)."""


class MissingOutputsError(OutputsError):
    """Some row that is re-scored has no output."""
