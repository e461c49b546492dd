"""What every command's exit status means, and the error that says "your input is wrong".

    0  agreement (or a command that did what it was asked)
    1  disagreement, or a crash inside a comparison
    2  bad usage or input: a missing or malformed file, a bad option value
"""

from __future__ import annotations

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad usage or input that a command found itself (exit 2, one line); raise it with the whole message."""


# Errors that mean "the input is wrong" when they escape a command: exit 2 with one line. A comparison turns
# the crashes of the implementations it runs into divergences (exit 1) before they get here.
INPUT_ERRORS = (UsageError, ValueError, TypeError, OSError, UnicodeError)


def exit_code(passed: bool) -> int:
    return EXIT_OK if passed else EXIT_MISMATCH


def one_line(err: BaseException) -> str:
    """The error's message on one line, with the file name of an OSError."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text += f": {err.filename}"
    return text
