"""A backend and a judge that return malformed values on purpose (loaded with --plugins-dir).

Only prompts containing "[bad]" get the malformed value, so each run also has units that
work: the run must go on past the bad one, fail just that unit (kind `malformed`), and
print counts that equal the store's.
"""

from __future__ import annotations

import asyncio
import sys
import time

from brie_bench.api import (BackendOptions, GenerationResult, Judge, JudgeOptions, JudgeResult, ModelBackend, Usage,
                            hookimpl)

BAD = "[bad]"


class MalformedOptions(BackendOptions):
    mode: str = "ok"
    block_s: float = 0.0         # sleep on the event loop (what a synchronous plugin does)
    thread_block_s: float = 0.0  # the same work in a worker thread, as the plugin guide asks


def bad_generation(mode: str):
    """The malformed answer for `mode`, or raise what the mode raises."""
    if mode == "surrogate_text":
        return GenerationResult(text="lone \ud800 surrogate")
    if mode == "none_text":
        return GenerationResult(text=None)  # type: ignore[arg-type]
    if mode == "int_text":
        return GenerationResult(text=42)  # type: ignore[arg-type]
    if mode == "dict_text":
        return GenerationResult(text={"answer": "x"})  # type: ignore[arg-type]
    if mode == "dict_finish_reason":
        return GenerationResult(text="fine", finish_reason={"why": "stop"})  # type: ignore[arg-type]
    if mode == "huge_usage":
        return GenerationResult(text="fine", usage=Usage(10 ** 30, 1))
    if mode == "negative_usage":
        return GenerationResult(text="fine", usage=Usage(-5, 1))
    if mode == "str_usage":
        return GenerationResult(text="fine", usage=Usage("12", 1))  # type: ignore[arg-type]
    if mode == "not_a_result":
        return "just a string"
    if mode == "cancelled":
        raise asyncio.CancelledError()
    if mode == "sys_exit":
        sys.exit(3)
    raise AssertionError(f"unknown mode {mode}")


class MalformedBackend(ModelBackend):
    name = "malformed"
    Options = MalformedOptions

    async def generate(self, request):
        prompt = request.messages[-1].content
        if self.options.block_s and BAD in prompt:
            time.sleep(self.options.block_s)  # synchronous work on the event loop: wait_for cannot cut it
        if self.options.thread_block_s and BAD in prompt:
            await asyncio.to_thread(time.sleep, self.options.thread_block_s)
        if BAD in prompt and self.options.mode != "ok":
            return bad_generation(self.options.mode)
        return GenerationResult(text=f"{self.model} on {prompt}", usage=Usage(3, 4), finish_reason="stop")


class MalformedJudgeOptions(JudgeOptions):
    mode: str = "ok"


def bad_judgment(mode: str):
    if mode == "surrogate_raw":
        return JudgeResult("A", raw="Winner: A \udfff")
    if mode == "none_raw":
        return JudgeResult("A", raw=None)  # type: ignore[arg-type]
    if mode == "bytes_raw":
        return JudgeResult("A", raw=b"Winner: A")  # type: ignore[arg-type]
    if mode == "dict_reasoning":
        return JudgeResult("A", raw="Winner: A", reasoning={"because": "yes"})  # type: ignore[arg-type]
    if mode == "surrogate_reasoning":
        return JudgeResult("B", raw="Winner: B", reasoning="\ud83d")
    if mode == "list_invalid_reason":
        return JudgeResult("invalid", raw="?", invalid_reason=["no", "verdict"])  # type: ignore[arg-type]
    if mode == "text_scores":
        return JudgeResult("A", raw="Winner: A", scores={"A": {"depth": "high"}})  # type: ignore[dict-item]
    if mode == "unknown_label_scores":
        return JudgeResult("A", raw="Winner: A", scores={"C": {"depth": 3}})  # type: ignore[dict-item]
    if mode == "string_scores":
        return JudgeResult("A", raw="Winner: A", scores="A=3")  # type: ignore[arg-type]
    if mode == "huge_usage":
        return JudgeResult("A", raw="Winner: A", usage=Usage(1, 10 ** 30))
    if mode == "negative_usage":
        return JudgeResult("A", raw="Winner: A", usage=Usage(1, -1))
    if mode == "not_a_result":
        return {"label": "A"}
    if mode == "cancelled":
        raise asyncio.CancelledError()
    raise AssertionError(f"unknown mode {mode}")


class MalformedJudge(Judge):
    name = "malformed"
    Options = MalformedJudgeOptions
    needs_backend = False
    deterministic = True

    async def judge(self, pair):
        if BAD in pair.prompt and self.options.mode != "ok":
            return bad_judgment(self.options.mode)
        return JudgeResult("A", raw="Winner: A", usage=Usage(5, 2))


@hookimpl
def register_backends(register):
    register(MalformedBackend)


@hookimpl
def register_judges(register):
    register(MalformedJudge)
