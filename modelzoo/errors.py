"""Exceptions raised by the toolkit. Each carries a message meant for the user."""

from __future__ import annotations


class ZooError(Exception):
    """Base class for every user-facing error of the toolkit."""


class UnknownNameError(ZooError, KeyError):
    """A registry lookup failed; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RecipeError(ZooError, ValueError):
    """A recipe or hyperparameter grid is invalid."""


class SourceNotFoundError(ZooError, FileNotFoundError):
    """A source dataset is not on disk; the message says where to put it."""


class SourceFormatError(ZooError, ValueError):
    """A source dataset file exists but is not in the expected format (or is unsafe)."""


class StorageError(ZooError, OSError):
    """Writing or reading a zoo failed (full disk, unwritable path, corrupt shard...)."""


class CorruptZooError(StorageError):
    """A zoo on disk does not match its manifest (checksum, schema, missing files)."""


class ShardChecksumError(CorruptZooError):
    """A shard is missing or its bytes differ from the sha256 its ``zoo.json`` records.

    Attributes:
        shard: the shard's path inside the zoo (as listed in ``zoo.json``).
        zoo: the zoo folder.
    """

    def __init__(self, message: str, *, shard: str = "", zoo: str = "") -> None:
        super().__init__(message)
        self.shard = shard
        self.zoo = zoo


class IncompleteZooError(CorruptZooError):
    """A zoo's models do not match its recorded plan (missing, duplicated or unplanned)."""


class NotPermutableError(ZooError, ValueError):
    """An architecture has no function-preserving neuron permutation (e.g. skip connections)."""


class PluginError(ZooError, ImportError):
    """An installed plugin (a Python entry point) failed to load."""


class ImportFormatError(ZooError, ValueError):
    """A foreign zoo's files are not in the layout its format expects (``zoo import``)."""


class UnsafeFileError(ImportFormatError):
    """A foreign file would need pickle to load, or a path leaves the folder being imported."""
