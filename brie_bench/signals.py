"""Stopping a run on SIGINT, SIGTERM and SIGHUP: the same way, with the same message, and leases released.

Why this module: Python turns only SIGINT into an exception (`KeyboardInterrupt`);
SIGTERM and SIGHUP killed the process at once, leaving its run `running` and its
leases `held`. And asyncio handles SIGINT by cancelling the main task, which waits
for the event loop: a plugin blocking the loop (a judge in `time.sleep`) ignored
the first Ctrl-C, and the second raised wherever the code happened to be.

Here every stop signal is handled alike:

* outside the event loop, the handler raises `Interrupted` (a `KeyboardInterrupt`)
  at once, as Ctrl-C always did;
* while a run's event loop runs (`StopOnSignal.attach`), the first signal cancels
  the run's main task, so every unit unwinds through its `finally` blocks (leases
  given back, the run marked interrupted). Should the loop not answer within
  `grace_s` (a plugin blocks it), the signal is sent again to the main thread, and
  that second delivery raises `Interrupted` inside the blocking call, which the
  engine turns into the same cancellation;
* a second signal from the user raises `Interrupted` at once.

The exit code is 128 + the signal's number: 130 (SIGINT), 143 (SIGTERM), 129 (SIGHUP).
`stopping()` tells the engine that a real signal arrived, so a plugin that raises
`KeyboardInterrupt` itself fails only its unit, while a real Ctrl-C stops the run.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # start-up time: `brie-bench --help` installs the handlers but never runs a loop
    import asyncio

#: The signals that stop a run, each like Ctrl-C. SIGHUP does not exist on Windows.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; `exit_code` is 128 + its number (130, 143, 129)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code(exc: BaseException) -> int:
    """The exit code for an interruption: 128 + the signal's number, 130 for a bare `KeyboardInterrupt`."""
    return exc.exit_code if isinstance(exc, Interrupted) else 128 + signal.SIGINT


#: The `StopOnSignal` in force (one per process at a time), read by `stopping`.
_ACTIVE: StopOnSignal | None = None


def stopping() -> bool:
    """Whether a real stop signal has arrived during the run in progress."""
    return _ACTIVE is not None and _ACTIVE.signum is not None


def is_real(exc: BaseException) -> bool:
    """Whether `exc` is the interruption of a real signal, not one a plugin raised itself."""
    return isinstance(exc, Interrupted) or (isinstance(exc, KeyboardInterrupt) and stopping())


#: Whether this process is `brie-bench` itself (`cli.main` installed the handlers).
_OWN_PROCESS = False


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def raise_on_stop_signals() -> None:
    """Make SIGTERM and SIGHUP raise `Interrupted`, as SIGINT raises `KeyboardInterrupt` (main thread only).

    Installed by `brie_bench.cli.main` before anything else runs (plugin loading included).
    """
    global _OWN_PROCESS
    if threading.current_thread() is not threading.main_thread():
        return
    _OWN_PROCESS = True
    for signum in STOP_SIGNALS:
        if signum != signal.SIGINT:
            signal.signal(signum, _raise_interrupted)


def ignore_stop_signals() -> None:
    """Ignore further stop signals: the process is already on its way out (no second traceback).

    Only in a `brie-bench` process (`raise_on_stop_signals` ran): a command invoked in-process
    (a test's CliRunner) must not leave its host deaf to Ctrl-C.
    """
    if not _OWN_PROCESS or threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


class StopOnSignal:
    """While in force (a `with` block around `asyncio.run`), stop signals stop the run as described above."""

    def __init__(self, grace_s: float = 1.0) -> None:
        self.grace_s = grace_s
        self.signum: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._answered = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        global _ACTIVE
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._handle)
        _ACTIVE = self
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        global _ACTIVE
        _ACTIVE = None
        self.detach()
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)

    def attach(self) -> None:
        """Called first thing inside the run's main coroutine: signals now cancel its task."""
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()

    def detach(self) -> None:
        self._loop = None
        self._task = None

    def interrupted(self) -> Interrupted | None:
        """The exception to raise once the run has unwound after a signal, or None."""
        return Interrupted(self.signum) if self.signum is not None else None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)  # the second signal (or the watchdog's): raise where we are
        self.signum = signum
        loop, task = self._loop, self._task
        if loop is None or task is None or loop.is_closed():
            raise Interrupted(signum)  # not inside the run's loop: stop at once, as Ctrl-C does
        loop.call_soon_threadsafe(self._cancel, task)
        threading.Thread(target=self._watchdog, args=(signum,), name="brie-bench-stop", daemon=True).start()

    def _cancel(self, task: asyncio.Task[Any]) -> None:
        self._answered.set()
        task.cancel()

    def _watchdog(self, signum: int) -> None:
        """Send the signal again to the main thread when the loop did not answer: something blocks it."""
        if self._answered.wait(self.grace_s):
            return
        main = threading.main_thread().ident
        if _ACTIVE is self and main is not None:
            signal.pthread_kill(main, signum)
