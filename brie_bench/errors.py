"""Error types shared by the core and by plugins.

The engine decides what to do with a failed call from the error's *type*:
`TransientError` is retried with backoff, everything else is recorded as a
permanent failure. Neither is ever turned into a verdict. `InputError` is bad
user input (suite, config, data file) and makes the CLI exit with code 2.
"""

from __future__ import annotations


class BrieBenchError(Exception):
    """Base class for every error Brie Bench raises on purpose."""


class InputError(BrieBenchError):
    """Bad user input. The message is one line that names file, field and line."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None,
                 line: int | None = None) -> None:
        self.path = path
        self.field = field
        self.line = line
        self.detail = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path:
            where = str(self.path)
            if self.line:
                where += f":{self.line}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.detail}"


class PluginError(BrieBenchError):
    """A plugin failed to load, register or configure itself."""


class CallError(BrieBenchError):
    """A model or judge call failed. Subclasses say whether retrying can help."""

    transient: bool = False

    def __init__(self, message: str, *, kind: str = "error", retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after
        self.status = status


class TransientError(CallError):
    """Worth retrying: rate limits (429), server errors (5xx), timeouts, dropped connections.

    Set `retry_after` (seconds) when the server said how long to wait.
    """

    transient = True


class PermanentError(CallError):
    """Retrying cannot help: bad credentials, unknown model, refused content, bad request."""

    transient = False


class MissingKeyError(InputError):
    """An API key environment variable that a contender or judge needs is not set."""


class StopRun(BrieBenchError):
    """Stop the whole run cleanly, now (e.g. a person at the terminal pressed quit).

    The unit in hand is not recorded; everything finished before is stored and a
    rerun continues from there.
    """
