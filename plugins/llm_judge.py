"""The `llm` judge: any model backend + a judging template + the verdict parser.

Three ways to get a verdict from the judge model:

* ``mode: generate, verdict: text`` (default): the model writes reasoning,
  1-5 scores per criterion and a final ``Winner: A|B|tie`` line, read by
  `parse_verdict`.
* ``mode: generate, verdict: json``: the request carries the verdict JSON
  schema, so providers that support structured output answer natively;
  otherwise the JSON is read from the text. Either way `validate_structured`
  decides.
* ``mode: logprob``: no text at all. The backend scores the next token after
  ``Winner: `` for "A" and "B"; P(A) is the softmax of the two. Even a tiny
  random local model always yields a verdict this way, and the probability is
  kept for calibration.

The template is rendered in Jinja's immutable sandbox with the prompt and
answers passed as *variables*, never spliced into template source, so an
answer that contains ``{{ 7*7 }}`` is shown literally and a user template
cannot reach Python internals.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import Field, field_validator

from brie_bench.api import (
    DEFAULT_CRITERIA,
    BlindedPair,
    GenerationRequest,
    GenerationResult,
    InputError,
    Judge,
    JudgeContext,
    JudgeOptions,
    JudgeResult,
    LabelVerdict,
    Message,
    ModelBackend,
    PermanentError,
    SamplingParams,
    Usage,
    hookimpl,
)
from brie_bench.bounded import confine, read_text, suite_path_field
from brie_bench.textsafe import normalise
from brie_bench.verdicts import (
    PARSER_VERSION,
    ParsedVerdict,
    parse_json_verdict,
    parse_verdict,
    validate_structured,
    verdict_schema,
)

DEFAULT_TEMPLATE = "judge_default.j2"
LOGPROB_PREFIX = "Winner: "
_CRITERION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\- ]{0,63}$")
#: Largest judging template read (a template is a page of instructions, not data).
MAX_TEMPLATE_BYTES = 1024 * 1024
# Tags the default template fences data with. An answer that writes one of them could
# "close" its fence and pose as instructions, so every spelling of an opening bracket
# followed by a fence name is defanged before rendering: `</response_a>`, `< /response_a>`,
# `</response_a` with no `>`, `</response_a x="<">`, `&lt;/response_a&gt;`, and (after
# normalisation) fullwidth, zero-width and bidi-laced variants.
_FENCE_NAME = r"(?:response[\s_\-]*[ab]|user[\s_\-]*prompt|system[\s_\-]*prompt)"
_FENCE_TAG = re.compile(rf"(?:<|&lt;?|&#0*60;?|&#x0*3c;?)(?P<body>\s*/?\s*{_FENCE_NAME}[^<>\n]{{0,200}})(?P<close>>)?",
                        re.IGNORECASE)


class LLMJudgeOptions(JudgeOptions):
    """Options of the `llm` judge."""

    template: str | None = suite_path_field(
        default=None, description="Jinja judging template, a file in the suite's folder; "
                                  "default: the packaged judge_default.j2")
    verdict: Literal["text", "json"] = Field(
        default="text", description="text: 'Winner: A' line and score lines; json: a structured verdict")
    mode: Literal["generate", "logprob"] = Field(
        default="generate", description="generate: the judge writes a verdict; logprob: P(A) from token probabilities")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="judge sampling temperature")
    max_tokens: int = Field(default=1024, ge=1, le=200_000, description="most tokens the judge may write")
    criteria: list[str] | None = Field(
        default=None, description="criteria scored 1-5 per response; default: " + ", ".join(DEFAULT_CRITERIA))
    system_prompt: str | None = Field(default=None, description="the judge's own system prompt")

    @field_validator("criteria")
    @classmethod
    def _check_criteria(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("criteria must name at least one criterion (or be left out for the defaults)")
        seen: set[str] = set()
        for name in value:
            if not _CRITERION_NAME.match(name):
                raise ValueError(f"criterion {name!r} must start with a letter and use letters, digits, "
                                 "'_', '-' or spaces (at most 64 characters)")
            key = re.sub(r"[\s_\-]+", "_", name.lower())
            if key in seen:
                raise ValueError(f"criterion {name!r} is listed twice")
            seen.add(key)
        return value


def defang_fences(text: str) -> str:
    """Make fence tags inside data inert: '</response_a>' becomes '‹/response_a›'.

    The text is normalised first (NFKC; zero-width and bidi characters removed,
    see `brie_bench.textsafe.normalise`), so fullwidth, zero-width-laced and
    bidi-wrapped spellings are found too. The bracket that opens a fence name
    becomes '‹', whatever follows it (`</response_a` without `>`, attributes
    holding `<`). An answer with any fence tag reaches the judge in its
    normalised, defanged form, so the judge reads exactly what was checked; an
    answer with none is passed unchanged (NFKC would turn `x²` into `x2`).
    """
    norm = normalise(text)
    if not _FENCE_TAG.search(norm):
        return text
    return _FENCE_TAG.sub(lambda m: "\u2039" + m.group("body") + ("\u203a" if m.group("close") else ""), norm)


def _softmax_pair(logprob_a: float, logprob_b: float) -> float:
    """P(A) from two log-probabilities, without overflow."""
    diff = logprob_b - logprob_a
    if diff > 0:
        e = math.exp(-diff)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(diff))


class JudgeTemplate:
    """A judging template compiled in Jinja's immutable sandbox; knows its own text and hash."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.source = self._read(path)
        self.sha256 = hashlib.sha256(self.source.encode("utf-8")).hexdigest()
        env = ImmutableSandboxedEnvironment(
            autoescape=False,  # plain text for a model, not HTML
            undefined=jinja2.StrictUndefined,  # a misspelt variable fails loudly, not as empty text
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        try:
            self._template = env.from_string(self.source)
        except jinja2.TemplateSyntaxError as exc:
            raise InputError(f"judging template does not parse: {exc.message}", path=self.where,
                             field="template", line=exc.lineno) from None

    @property
    def where(self) -> str:
        return self.path or f"brie_bench/templates/{DEFAULT_TEMPLATE}"

    @staticmethod
    def _read(path: str | None) -> str:
        if path is None:
            return resources.files("brie_bench").joinpath("templates", DEFAULT_TEMPLATE).read_text("utf-8")
        try:  # a regular file of bounded size: never a FIFO or a device
            return read_text(path, MAX_TEMPLATE_BYTES, "judging template")
        except InputError as exc:
            raise InputError(exc.detail, path=path, field="template", line=exc.line) from None

    def render(self, variables: dict[str, Any]) -> str:
        """Render with `variables`; template mistakes and sandbox violations become an InputError."""
        try:
            text = self._template.render(**variables)
        except jinja2.exceptions.SecurityError as exc:
            raise InputError(f"judging template tried something the sandbox forbids: {exc}",
                             path=self.where, field="template") from None
        except jinja2.TemplateError as exc:
            line = _template_line(exc)
            raise InputError(f"judging template failed to render: {exc}", path=self.where,
                             field="template", line=line) from None
        except Exception as exc:  # noqa: BLE001 - e.g. {% include %} without a loader, 1/0
            raise InputError(f"judging template failed to render: {type(exc).__name__}: {exc}",
                             path=self.where, field="template") from None
        return text.strip() + "\n"


def _template_line(exc: Exception) -> int | None:
    return getattr(exc, "lineno", None)


class LLMJudge(Judge):
    """Asks a model backend to compare a blinded pair and reads its verdict over labels."""

    name: ClassVar[str] = "llm"
    description: ClassVar[str] = ("an LLM compares the two answers with a judging template "
                                  "(text, JSON or logprob verdicts)")
    Options: ClassVar[type[LLMJudgeOptions]] = LLMJudgeOptions
    needs_backend: ClassVar[bool] = True

    options: LLMJudgeOptions

    def __init__(self, options: LLMJudgeOptions, backend: ModelBackend | None, context: JudgeContext) -> None:
        super().__init__(options, backend, context)
        self.criteria: tuple[str, ...] = tuple(options.criteria) if options.criteria else DEFAULT_CRITERIA
        self.template = JudgeTemplate(self._template_path(options.template, context))
        if options.mode == "logprob" and backend is not None and not backend.supports_choice_logprobs:
            raise InputError(f"backend {backend.name!r} does not expose token probabilities; "
                             "use mode: generate", field=f"judges.{context.name}.mode")
        # Render once now, so a broken or malicious template fails before any model call.
        self._render(BlindedPair(prompt="(prompt)", answer_a="(first response)", answer_b="(second response)",
                                 criteria=self.criteria, system_prompt="(system prompt)"))

    @staticmethod
    def _template_path(template: str | None, context: JudgeContext) -> str | None:
        """The template file, confined to the suite's folder when there is one (as the suite loader checks)."""
        if template is None:
            return None
        if context.base_dir is None:
            return template
        try:
            return str(confine(Path(context.base_dir), template))
        except ValueError as exc:
            raise InputError(str(exc), field=f"judges.{context.name}.options.template") from None

    # -- identity ----------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """Options, backend, template *content* hash and parser version: what decides a verdict.

        The template path is left out (moving a file changes nothing); its text
        is in, so editing a template gives new judgment keys.
        """
        opts = self.options.model_dump(mode="json", exclude={"template", "criteria"})
        opts["criteria"] = list(self.criteria)
        return {
            "judge": self.name,
            "options": opts,
            "template_sha256": self.template.sha256,
            "parser_version": PARSER_VERSION,
            "backend": self.backend.identity() if self.backend else None,
        }

    def shown_options(self) -> dict[str, Any]:
        """The options as run metadata and reports list them: those this mode ignores are left out.

        In logprob mode no text is generated, so the verdict format, sampling
        temperature and max_tokens do nothing (the criteria still shape the prompt).
        """
        opts = dict(self.identity()["options"])
        if self.options.mode == "logprob":
            for name in ("verdict", "temperature", "max_tokens"):
                opts.pop(name, None)
        return opts

    # -- prompt ------------------------------------------------------------------------
    def _verdict_format(self) -> str:
        return "label" if self.options.mode == "logprob" else self.options.verdict

    def _render(self, pair: BlindedPair) -> str:
        return self.template.render({
            "prompt": defang_fences(pair.prompt),
            "answer_a": defang_fences(pair.answer_a),
            "answer_b": defang_fences(pair.answer_b),
            "criteria": list(self.criteria),
            "system_prompt": defang_fences(pair.system_prompt) if pair.system_prompt else None,
            "verdict_format": self._verdict_format(),
        })

    def messages(self, pair: BlindedPair) -> tuple[Message, ...]:
        """The conversation sent to the judge model: its own system prompt, then the rendered template."""
        out: list[Message] = []
        if self.options.system_prompt:
            out.append(Message("system", self.options.system_prompt))
        out.append(Message("user", self._render(pair)))
        return tuple(out)

    # -- judging -----------------------------------------------------------------------
    async def judge(self, pair: BlindedPair) -> JudgeResult:
        """One verdict over labels. Backend errors propagate: the engine retries or records them."""
        if self.backend is None:
            raise PermanentError(f"judge {self.context.name!r} (llm) has no backend", kind="config")
        if self.options.mode == "logprob":
            return await self._judge_logprob(pair)
        result = await self.backend.generate(self.request(pair))
        return self.result(pair, result)

    def request(self, pair: BlindedPair) -> GenerationRequest:
        """The judging call for a pair (generate mode): used directly and by batch submission."""
        json_mode = self.options.verdict == "json"
        return GenerationRequest(
            messages=self.messages(pair),
            params=SamplingParams(temperature=self.options.temperature, top_p=1.0,
                                  max_tokens=self.options.max_tokens, seed=self.context.seed),
            response_schema=verdict_schema(self.criteria) if json_mode else None,
            schema_name="verdict",
        )

    def result(self, pair: BlindedPair, result: GenerationResult) -> JudgeResult:
        """Parse the judge model's answer (text or structured) into a label verdict."""
        if self.options.verdict == "json":
            if result.structured is not None:
                parsed = validate_structured(result.structured, self.criteria)
            else:
                parsed = parse_json_verdict(result.text or "", self.criteria)
        else:
            # The template asks for a text verdict line: JSON in the answer is never the verdict.
            parsed = parse_verdict(result.text or "", self.criteria, accept_json=False)
        return _to_result(parsed, result)

    def batch_request(self, pair: BlindedPair) -> GenerationRequest | None:
        return None if self.options.mode == "logprob" else self.request(pair)

    def batch_result(self, pair: BlindedPair, result: GenerationResult) -> JudgeResult:
        return self.result(pair, result)

    async def _judge_logprob(self, pair: BlindedPair) -> JudgeResult:
        assert self.backend is not None
        logprobs = await self.backend.choice_logprobs(self.messages(pair), ["A", "B"],
                                                      assistant_prefix=LOGPROB_PREFIX)
        la, lb = logprobs.get("A"), logprobs.get("B")
        usage = getattr(logprobs, "usage", None) or Usage()  # ChoiceLogprobs carries it; a plain dict does not
        raw = f"logprob(A)={_fmt(la)} logprob(B)={_fmt(lb)}"
        if la is None or lb is None:
            missing = " and ".join(k for k, v in (("A", la), ("B", lb)) if v is None)
            return JudgeResult("invalid", raw=raw, invalid_reason=f"the backend could not score {missing}",
                               usage=usage)
        if any(math.isnan(v) for v in (la, lb)) or (math.isinf(la) and math.isinf(lb)):
            return JudgeResult("invalid", raw=raw, invalid_reason="log-probabilities give no preference",
                               usage=usage)
        p_a = _softmax_pair(la, lb)
        label: LabelVerdict = "A" if p_a > 0.5 else "B" if p_a < 0.5 else "tie"
        return JudgeResult(label, raw=f"P(A)={p_a:.4f} ({raw})", p_a=p_a, usage=usage)


def _fmt(value: float | None) -> str:
    return "None" if value is None else f"{value:.4f}"


def _to_result(parsed: ParsedVerdict, result: GenerationResult) -> JudgeResult:
    """A JudgeResult that always keeps the raw answer, and says when an invalid one was cut off."""
    raw = result.text or ""
    if not raw and result.structured is not None:
        raw = json.dumps(dict(result.structured), ensure_ascii=False, sort_keys=True, default=str)
    reason = parsed.invalid_reason
    if parsed.label == "invalid" and result.finish_reason in ("length", "max_tokens", "MAX_TOKENS"):
        reason = f"{reason} (the answer was cut off at max_tokens)"
    return JudgeResult(parsed.label, raw=raw, scores=parsed.scores, reasoning=parsed.reasoning,
                       invalid_reason=reason, usage=result.usage)


@hookimpl
def register_judges(register: Any) -> None:
    register(LLMJudge)


__all__ = ["LLMJudge", "LLMJudgeOptions", "JudgeTemplate", "defang_fences", "register_judges"]
