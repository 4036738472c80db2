"""Exceptions that are part of the interface: each names the file, row and column it is about."""

from __future__ import annotations


class UrbanSafetyError(Exception):
    """Base class: a failure the user can act on, printed without a stack trace."""


class DataError(UrbanSafetyError):
    """A source file or config that cannot be read as what it claims to be."""

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None, cases: list[tuple[int, str]] | None = None):
        # ``cases``: every (row, reason) failing the same check, where a reader knows them (a batch refuses
        # them all in one go instead of one row per reading)
        self.file, self.row, self.column, self.cases = file, row, column, cases
        self.message = message  # without the where: an API names the field in its own way
        where = ", ".join(
            part for part in (
                f"file {file}" if file else None,
                f"row {row}" if row is not None else None,
                f"column {column!r}" if column else None,
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)
