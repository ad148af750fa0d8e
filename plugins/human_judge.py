"""The `human` judge: a person compares the two answers blind, at the terminal.

The person sees the prompt, answer A and answer B (long answers page by
page) and presses a key: ``a`` (A is better), ``b`` (B is better), ``t``
(tie), ``s`` (skip: stored as invalid with the reason "skipped") or ``q``
(quit). With the option ``scores: true`` they then give each answer a 1-5
score per criterion (Enter leaves a score out). Each key is followed by Enter,
which is what makes the judge usable over ssh, in tmux and from a script.

Quitting raises `StopRun`: the engine stops without recording the comparison
in hand. Every verdict given before is already stored (the engine commits
each unit), so rerunning the same command continues where the person stopped.
Several people can judge the same suite: give each one a judge entry with
their own ``judge_name``; the name is part of the judge's identity, so their
verdicts are kept apart.

Keys come from the terminal, or (for tests, demos and scripted sessions)
from `set_key_source(...)` or the environment variable
``BRIE_BENCH_HUMAN_KEYS`` (comma-separated keys, an empty item is Enter).
Output goes to a rich console: `set_console(...)` redirects it.

Like every built-in plugin it imports only the public API, `brie_bench.api`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import threading
import unicodedata
from typing import Any, ClassVar
from collections.abc import Iterable, Iterator
from concurrent.futures import Future

from pydantic import Field
from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text

from brie_bench.api import (
    BlindedPair,
    Judge,
    JudgeContext,
    JudgeOptions,
    JudgeResult,
    LabelVerdict,
    Limits,
    ModelBackend,
    StopRun,
    hookimpl,
    stable_hash,
)

KEYS_ENV = "BRIE_BENCH_HUMAN_KEYS"
VERDICT_KEYS: dict[str, LabelVerdict] = {"a": "A", "b": "B", "t": "tie"}
SKIP, QUIT, NEXT_PAGE = "s", "q", ("", "n", " ")
#: Lines a page may not use: header, panel borders and the key prompt.
_CHROME_LINES = 8

# -- where keys come from and where output goes ---------------------------------------------
_lock = threading.Lock()
_scripted: Iterator[str] | None = None
_env_keys: tuple[str, Iterator[str]] | None = None
_console: Console | None = None
#: One comparison on the terminal at a time, even with several human judges in one run.
_terminal = threading.Lock()


def set_key_source(keys: Iterable[str] | None) -> None:
    """Read keys from `keys` instead of the terminal (None: back to the terminal).

    Each item is one line the person would type; "" stands for a bare Enter.
    When the keys run out, the judge behaves as if the person pressed quit.
    """
    global _scripted
    with _lock:
        _scripted = None if keys is None else iter(keys)


def set_console(console: Console | None) -> None:
    """Send the judge's screen to `console` (None: the process's standard output)."""
    global _console
    with _lock:
        _console = console


def _next_key() -> str | None:
    """The next key line, or None at end of input (Ctrl-D, or scripted keys used up)."""
    global _env_keys
    with _lock:
        source = _scripted
        env = os.environ.get(KEYS_ENV)
        if source is None and env is not None:
            if _env_keys is None or _env_keys[0] != env:
                _env_keys = (env, iter(env.split(",")))
            source = _env_keys[1]
    if source is not None:
        return next(source, None)
    line = sys.stdin.readline()
    return None if line == "" else line.rstrip("\r\n")


def _out() -> Console:
    return _console or Console(highlight=False)


# -- what the person sees --------------------------------------------------------------------
_BIDI_CONTROLS = {"\u200e", "\u200f", "\u061c"} | {chr(c) for c in range(0x202A, 0x202F)} | \
                 {chr(c) for c in range(0x2066, 0x206A)}


def terminal_safe(text: str) -> str:
    """Show control characters instead of obeying them.

    An answer is data. Without this, an answer holding ESC sequences could clear
    the screen or recolour text, and a bidi override could make "Winner: A" read
    backwards. Right-to-left *letters* are left alone: only invisible controls
    are made visible.
    """
    out = []
    for ch in text:
        if ch in "\n\t":
            out.append(ch)
        elif ch in _BIDI_CONTROLS or unicodedata.category(ch) == "Cc":
            out.append(f"\u27e8U+{ord(ch):04X}\u27e9")
        else:
            out.append(ch)
    return "".join(out)


def paginate(text: str, width: int, page_lines: int) -> list[str]:
    """Split `text` into pages of at most `page_lines` lines wrapped at `width` columns."""
    lines: list[str] = []
    for raw_line in text.split("\n"):
        wrapped = textwrap.wrap(raw_line, width=max(10, width), replace_whitespace=False,
                                drop_whitespace=False, break_long_words=True) or [""]
        lines.extend(wrapped)
    size = max(1, page_lines)
    return ["\n".join(lines[i:i + size]) for i in range(0, len(lines), size)] or [""]


class HumanJudgeOptions(JudgeOptions):
    """Options of the `human` judge."""

    judge_name: str = Field(
        default="anonymous", min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$",
        description="who is judging; part of the judge's identity, so several people can judge one suite")
    scores: bool = Field(default=False, description="also ask for a 1-5 score per criterion for each answer")
    page_lines: int = Field(default=0, ge=0, le=100_000,
                            description="lines per page of a long answer; 0: fit the terminal")


class _Quit(Exception):
    """The person pressed quit (or input ended) in the middle of a comparison."""


class HumanJudge(Judge):
    """A person at the terminal judges each blinded pair."""

    name: ClassVar[str] = "human"
    description: ClassVar[str] = "a person judges blind at the terminal (keys a / b / t / s / q)"
    Options: ClassVar[type[HumanJudgeOptions]] = HumanJudgeOptions
    needs_backend: ClassVar[bool] = False
    deterministic: ClassVar[bool] = False
    concurrent: ClassVar[bool] = False
    #: A person may take a long time to read and cannot be "retried".
    default_limits: ClassVar[Limits] = Limits(max_concurrency=1, timeout_s=86_400.0, max_attempts=1)

    options: HumanJudgeOptions

    def __init__(self, options: HumanJudgeOptions, backend: ModelBackend | None, context: JudgeContext) -> None:
        super().__init__(options, backend, context)
        self._pending: dict[str, Future[JudgeResult]] = {}
        self._quit = False    # the person quit: every later call stops the run at once
        self._closed = False  # the run ended: a session still waiting for the terminal must not start
        self.judged = 0

    def identity(self) -> dict[str, Any]:
        """Who judged and whether they scored; paging is presentation and stays out."""
        return {"judge": self.name, "options": {"judge_name": self.options.judge_name,
                                                 "scores": self.options.scores}, "backend": None}

    async def judge(self, pair: BlindedPair) -> JudgeResult:
        """Ask the person; StopRun when they quit.

        The session runs in a worker thread. If the engine gives up waiting (its
        timeout) and calls again for the same pair, the call picks up the session
        already on screen instead of showing the pair twice.
        """
        if self._quit:
            raise StopRun(f"{self.options.judge_name} quit judging")
        key = stable_hash([pair.prompt, pair.answer_a, pair.answer_b, list(pair.criteria), pair.system_prompt])
        future = self._pending.get(key)
        if future is None:
            future = self._start(pair)
            self._pending[key] = future
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        finally:
            if future.done():
                self._pending.pop(key, None)

    def _start(self, pair: BlindedPair) -> Future[JudgeResult]:
        """Run one session in a daemon thread, so the event loop keeps serving other judges
        while the person reads, and a session still waiting on the keyboard never holds up exit."""
        future: Future[JudgeResult] = Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._session(pair))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                future.set_exception(exc)

        threading.Thread(target=work, name=f"brie-human-{self.options.judge_name}", daemon=True).start()
        return future

    # -- the session at the terminal ------------------------------------------------------------
    def _session(self, pair: BlindedPair) -> JudgeResult:
        console = _out()
        try:
            with _terminal:
                if self._quit or self._closed:  # quit or run over while waiting for the terminal
                    raise StopRun(f"{self.options.judge_name} quit judging")
                return self._ask(console, pair)
        except _Quit:
            self._quit = True
            console.print(Text("Stopped. Every verdict given so far is stored; rerun the same command to "
                               "continue.", style="bold"))
            raise StopRun(f"{self.options.judge_name} quit judging") from None

    def _read(self, console: Console, prompt: str) -> str:
        """One key line from the person; _Quit on q or end of input."""
        console.print(Text(prompt, style="cyan"))
        key = _next_key()
        if key is None:
            raise _Quit()
        key = key.strip().lower()
        if key == QUIT:
            raise _Quit()
        return key

    def _ask(self, console: Console, pair: BlindedPair) -> JudgeResult:
        width = max(20, console.width - 4)
        page_lines = self.options.page_lines or max(5, console.height - _CHROME_LINES)
        console.print(Rule(Text(f"Comparison {self.judged + 1} for {self.options.judge_name} "
                                f"({self.judged} judged in this session)")))
        if pair.system_prompt:
            console.print(Panel(Text(terminal_safe(pair.system_prompt)), title="System prompt", title_align="left"))
        console.print(Panel(Text(terminal_safe(pair.prompt)), title="Prompt", title_align="left"))
        decided: str | None = None
        for label in ("A", "B"):
            pages = paginate(terminal_safe(pair.answer(label)), width, page_lines)
            for i, page in enumerate(pages, 1):
                title = f"Answer {label}" + (f" (page {i}/{len(pages)})" if len(pages) > 1 else "")
                console.print(Panel(Text(page), title=title, title_align="left"))
                if i < len(pages):  # between the pages of one answer; A runs straight into B
                    decided = self._page_key(console)
                    if decided is not None:
                        break
            if decided is not None:
                break
        if decided is None:
            decided = self._verdict_key(console)
        if decided == SKIP:
            self.judged += 1
            return JudgeResult("invalid", raw=f"{self.options.judge_name}: s", invalid_reason="skipped")
        label = VERDICT_KEYS[decided]
        scores, score_keys = self._scores(console, pair) if self.options.scores else (None, [])
        self.judged += 1
        raw = f"{self.options.judge_name}: {decided}" + (f" scores {' '.join(score_keys)}" if score_keys else "")
        return JudgeResult(label, raw=raw, scores=scores)

    def _page_key(self, console: Console) -> str | None:
        """Enter for the next page, or decide now; None means: show the next page."""
        while True:
            key = self._read(console, "[Enter] next page · a / b / t decide now · s skip · q quit")
            if key in NEXT_PAGE:
                return None
            if key in VERDICT_KEYS or key == SKIP:
                return key
            console.print(Text(f"unknown key {key!r}", style="red"))

    def _verdict_key(self, console: Console) -> str:
        while True:
            key = self._read(console, "Which is better? a: A · b: B · t: tie · s: skip · q: quit (then Enter)")
            if key in VERDICT_KEYS or key == SKIP:
                return key
            console.print(Text(f"unknown key {key!r}", style="red"))

    def _scores(self, console: Console, pair: BlindedPair) -> tuple[dict[str, dict[str, int]] | None, list[str]]:
        scores: dict[str, dict[str, int]] = {"A": {}, "B": {}}
        keys: list[str] = []
        for criterion in pair.criteria:
            for label in ("A", "B"):
                while True:
                    key = self._read(console, f"{criterion} of answer {label}: 1-5 (Enter: no score, q: quit)")
                    if key == "":
                        keys.append("-")
                        break
                    if key in {"1", "2", "3", "4", "5"}:
                        scores[label][criterion] = int(key)
                        keys.append(key)
                        break
                    console.print(Text(f"a score is 1 to 5, not {key!r}", style="red"))
        kept = {label: s for label, s in scores.items() if s}
        return (kept or None), keys

    async def aclose(self) -> None:
        """The run is over: sessions not yet on screen will not start."""
        self._closed = True


@hookimpl
def register_judges(register: Any) -> None:
    register(HumanJudge)


__all__ = ["HumanJudge", "HumanJudgeOptions", "set_key_source", "set_console", "terminal_safe", "paginate",
           "KEYS_ENV", "register_judges"]
