"""Test plugins loaded with --plugins-dir: a scripted backend and simple judges.

They are real plugins (public API only), so the engine, store and CLI run
exactly as they do for any third-party plugin.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

from brie_bench.api import (BackendOptions, GenerationResult, Judge, JudgeOptions, JudgeResult, ModelBackend,
                            PermanentError, TransientError, Usage, hookimpl)


class ScriptedOptions(BackendOptions):
    style: str = "plain"
    marker: str = ""
    delay_s: float = 0.0
    transient_failures: int = 0   # fail this many times per distinct request before answering
    permanent_if: str = ""        # fail permanently when the prompt contains this text
    call_log: str = ""            # append one line per call to this file
    reply: str = ""               # answer exactly this text (e.g. a rubric-shaped answer for a judge's model)


class ScriptedBackend(ModelBackend):
    """Answers deterministically from (model, style, prompt); can inject faults."""

    name = "scripted"
    Options = ScriptedOptions
    default_limits = ModelBackend.default_limits.model_copy(update={"max_concurrency": 8})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.failures: dict[str, int] = {}

    async def generate(self, request):
        prompt = request.messages[-1].content
        if self.options.call_log:
            with open(self.options.call_log, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"model": self.model, "prompt": prompt}) + "\n")
        if self.options.delay_s:
            await asyncio.sleep(self.options.delay_s)
        if self.options.permanent_if and self.options.permanent_if in prompt:
            raise PermanentError("refused by policy", kind="refusal", status=400)
        digest = hashlib.sha256(prompt.encode()).hexdigest()
        seen = self.failures.get(digest, 0)
        if seen < self.options.transient_failures:
            self.failures[digest] = seen + 1
            raise TransientError("rate limited", kind="rate_limit", retry_after=0.01, status=429)
        words = prompt.split()
        if self.options.reply:
            return GenerationResult(text=self.options.reply, usage=Usage(len(words), len(self.options.reply.split())),
                                    finish_reason="stop")
        text = f"{self.options.style} answer on {' '.join(words[:4])} {self.options.marker}".strip()
        if self.options.style == "long":
            text += " with much more to say about it" * 3
        return GenerationResult(text=text, usage=Usage(len(words), len(text.split())), finish_reason="stop")


class FixedOptions(JudgeOptions):
    answer: str = "A"


class FixedJudge(Judge):
    """Always answers the same label: pure position/label bias."""

    name = "fixed"
    Options = FixedOptions
    needs_backend = False
    deterministic = True

    async def judge(self, pair):
        return JudgeResult(label=self.options.answer, raw=f"Winner: {self.options.answer}")


class MarkerOptions(JudgeOptions):
    marker: str = "*"
    record: str = ""  # append each blinded pair (as JSON) to this file


class MarkerJudge(Judge):
    """Prefers the answer containing a marker: recognises one contender's text."""

    name = "marker"
    Options = MarkerOptions
    needs_backend = False
    deterministic = True

    async def judge(self, pair):
        if self.options.record:
            with open(self.options.record, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"prompt": pair.prompt, "a": pair.answer_a, "b": pair.answer_b,
                                     "system": pair.system_prompt, "criteria": list(pair.criteria)}) + "\n")
        in_a, in_b = self.options.marker in pair.answer_a, self.options.marker in pair.answer_b
        label = "A" if in_a and not in_b else "B" if in_b and not in_a else "tie"
        return JudgeResult(label=label, raw=f"Winner: {label}")


@hookimpl
def register_backends(register):
    register(ScriptedBackend)


@hookimpl
def register_judges(register):
    register(FixedJudge)
    register(MarkerJudge)
