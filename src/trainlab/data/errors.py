"""Errors raised while finding, verifying, downloading and parsing raw data files."""
from __future__ import annotations


class DataError(Exception):
    """Base class of every data-set error."""


class MissingDataError(DataError, FileNotFoundError):
    """A data set's files are absent (and could not be downloaded)."""


class ChecksumError(DataError):
    """A file's digest differs from the published one: ``path``, ``algorithm``, ``expected``, ``actual``."""

    def __init__(self, path: object, algorithm: str, expected: str, actual: str):
        self.path, self.algorithm, self.expected, self.actual = path, algorithm, expected, actual
        super().__init__(
            f"checksum mismatch for {path}: expected {algorithm} {expected}, got {actual}; "
            "the file is corrupted or is not the official one (delete it and download it again)"
        )


class FormatError(DataError, ValueError):
    """A verified file does not have the expected layout (wrong magic number, shape or columns)."""
