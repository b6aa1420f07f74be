"""Errors that mean the user asked for something that cannot be done as asked.

The command line prints these as one line and exits 2; any other exception is a bug and keeps its
traceback. Both subclass ``ValueError`` (or ``ImportError``), so Python callers can catch them as before.
"""

from __future__ import annotations

__all__ = ["UserInputError", "MissingDependencyError"]


class UserInputError(ValueError):
    """Bad user input (an unknown reward or option, an unreadable spec, a device that is not there, ...);
    the message says what was wrong and what to do."""


class MissingDependencyError(UserInputError, ImportError):
    """A package that only an extra installs is missing; the message names the extra to install."""
