"""The error types a person sees: every one carries a single line that names the
problem and, where possible, the fix.

Anything else that escapes a stage or a command is a bug, and is reported as one.
"""

# The longest a message or a table quotes one piece of user data (a cell, a column name, a URI).
QUOTE_LIMIT = 80
# The longest one error line gets, whatever it quotes.
MESSAGE_LIMIT = 2000


def printable(value: object, limit: int | None = QUOTE_LIMIT) -> str:
    """``value`` as text that is safe on a terminal: every non-printing character (ESC, BEL and the
    other controls, bidi overrides, line and paragraph separators) becomes a visible ``\\x..`` /
    ``\\u....`` escape, and the text is cut at ``limit`` characters (None: not cut).

    >>> printable("ok\\x1b[2J\\x07 é")
    'ok\\\\x1b[2J\\\\x07 é'
    >>> printable("x" * 100, limit=10)
    'xxxxxxxxxx… (100 characters)'
    """
    text = str(value)
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    if limit is not None and len(shown) > limit:
        shown = f"{shown[:limit]}… ({len(text)} characters)"
    return shown


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``value`` in single quotes for a message: :func:`printable`, cut at ``limit``."""
    return f"'{printable(value, limit)}'"


class MlopsError(Exception):
    """A failure the user can act on; ``str(error)`` is the one line they read."""

    def __str__(self) -> str:
        # Whatever was passed in (a multi-line parser message, say), one line out, with nothing a
        # terminal would act on (escape sequences, bells) and of a bounded length.
        return printable(" ".join(super().__str__().split()), MESSAGE_LIMIT)


class StageError(MlopsError):
    """Bad input or data that stops a pipeline stage."""


class SettingError(MlopsError):
    """An ``MLOPS_*`` environment setting that cannot be used."""
