"""Error types shared by the core and by plugins.

The engine decides what to do with a failed call from the error's *type*:
`TransientError` is retried with backoff, everything else is recorded as a
permanent failure. Neither is ever turned into a verdict. `InputError` is bad
user input (suite, config, data file) and makes the CLI exit with code 2.

What went wrong is the error's `kind`, one of the closed set `ErrorKind` (the table
in docs/writing-a-plugin.md, "Error kinds"): the store's error log, the run summary
and the reports group failures by it, so a typo in a plugin must not invent a kind.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Why a call failed: the closed set of error kinds (documented in docs/writing-a-plugin.md).

    A `StrEnum`, so a kind is stored, printed and compared as its plain string
    (``exc.kind == "timeout"`` holds). Whether a failure is retried is the error's
    class (`TransientError` or not), never its kind.
    """

    ERROR = "error"                  # unclassified: no kind given, or one not in this table
    PLUGIN_ERROR = "plugin_error"    # the plugin raised something that is not a CallError (a bug)
    MALFORMED = "malformed"          # a result or answer the core or the SDK could not read
    TIMEOUT = "timeout"              # no answer within timeout_s
    CONNECTION = "connection"        # the connection failed or dropped
    REFUSED = "refused"              # the connection was refused: nothing listens there
    RATE_LIMIT = "rate_limit"        # 429: wait (retry_after) and try again
    SERVER = "server"                # 5xx, overloaded, conflict
    AUTH = "auth"                    # bad or missing credentials, no permission
    QUOTA = "quota"                  # out of credit: waiting will not help
    MODEL = "model"                  # unknown model (404)
    BAD_REQUEST = "bad_request"      # the provider rejected the request as written
    REFUSAL = "refusal"              # the model refused, or a safety filter stopped it
    UNSUPPORTED = "unsupported"      # the backend cannot do what was asked (e.g. logprobs)
    CONFIG = "config"                # the plugin is misconfigured (no chat template, no backend)
    LOAD = "load"                    # a local model or adapter failed to load
    OOM = "oom"                      # out of accelerator memory
    BATCH_EXPIRED = "batch_expired"  # a provider batch ended (expired, cancelled) without this request
    BATCH_FAILED = "batch_failed"    # a provider batch failed as a whole
    BATCH_MISSING = "batch_missing"  # a finished batch did not return this request

    @classmethod
    def parse(cls, kind: str | ErrorKind) -> ErrorKind | None:
        """The member for `kind`, or None when it is not one (the caller decides what that means)."""
        try:
            return cls(kind)
        except ValueError:
            return None


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
    """A model or judge call failed. Subclasses say whether retrying can help.

    `kind` must be an `ErrorKind` (or its string). A kind outside the table, from a
    third-party plugin, is mapped to ``ErrorKind.ERROR`` and named in the message
    (``[unknown error kind 'x']``), so it stays visible in the error log without
    becoming a new category of its own.
    """

    transient: bool = False
    kind: ErrorKind

    def __init__(self, message: str, *, kind: str | ErrorKind = ErrorKind.ERROR, retry_after: float | None = None,
                 status: int | None = None) -> None:
        known = ErrorKind.parse(kind)
        if known is None:
            message = f"{message} [unknown error kind {kind!r}]"
            known = ErrorKind.ERROR
        super().__init__(message)
        self.kind = known
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
