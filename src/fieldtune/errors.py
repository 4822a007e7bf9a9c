"""Errors a user can act on.

Every problem caused by the user's input (data files, config, model paths) is raised as a
:class:`UserError`. The CLI prints it without a traceback and exits with code 2.
"""

from __future__ import annotations

from pathlib import Path


class FieldtuneError(Exception):
    """Base class of all fieldtune errors."""


class UserError(FieldtuneError):
    """A problem in the user's input, with where it is and how to fix it.

    Args:
        message: What is wrong.
        path: The file it was found in, if any.
        line: 1-based line number in ``path``, if known.
        hint: What to do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message, self.path, self.line, self.hint = message, path, line, hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text
