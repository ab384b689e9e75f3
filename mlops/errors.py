"""The error types a person sees: every one carries a single line that names the
problem and, where possible, the fix.

Anything else that escapes a stage or a command is a bug, and is reported as one.
"""


class MlopsError(Exception):
    """A failure the user can act on; ``str(error)`` is the one line they read."""

    def __str__(self) -> str:
        # Whatever was passed in (a multi-line parser message, say), one line out.
        return " ".join(super().__str__().split())


class StageError(MlopsError):
    """Bad input or data that stops a pipeline stage."""


class SettingError(MlopsError):
    """An ``MLOPS_*`` environment setting that cannot be used."""
