"""The records that flow between suite, plan, engine, plugins and store.

They are frozen dataclasses so they can be hashed, compared and passed to
worker threads without surprises. Plugins receive and return only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from collections.abc import Mapping

Role = Literal["system", "user", "assistant"]
Label = Literal["A", "B"]
LabelVerdict = Literal["A", "B", "tie", "invalid"]
LABELS: tuple[Label, Label] = ("A", "B")

DEFAULT_CRITERIA: tuple[str, ...] = (
    "creativity",
    "coherence",
    "depth",
    "engagement",
    "writing_quality",
)


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters. `seed` makes local sampling repeatable; providers may ignore it."""

    temperature: float = 0.75
    top_p: float = 0.95
    max_tokens: int = 512
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_tokens, "seed": self.seed}


@dataclass(frozen=True)
class GenerationRequest:
    """One call to a model backend.

    `response_schema` asks for a structured (JSON-schema) answer where the backend
    supports it; `schema_name` names it (tool name, schema name). Backends that
    cannot honour it ignore it and the caller validates the text.
    """

    messages: tuple[Message, ...]
    params: SamplingParams = field(default_factory=SamplingParams)
    response_schema: Mapping[str, Any] | None = None
    schema_name: str = "verdict"


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True)
class GenerationResult:
    """What a backend returns for one request.

    `structured` holds the parsed JSON object when a structured answer was asked
    for and the provider returned one natively (tool input, JSON mode).
    """

    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    structured: Mapping[str, Any] | None = None
    model: str | None = None


@dataclass(frozen=True)
class BlindedPair:
    """Everything a judge may see. Label A is always presented first.

    It holds no contender names, model ids or adapter paths by construction:
    the engine builds it from the prompt and the two answer texts only.
    """

    prompt: str
    answer_a: str
    answer_b: str
    criteria: tuple[str, ...] = DEFAULT_CRITERIA
    system_prompt: str | None = None

    def answer(self, label: Label) -> str:
        return self.answer_a if label == "A" else self.answer_b


@dataclass(frozen=True)
class JudgeResult:
    """A judge's verdict over *labels*, before unblinding.

    `label` is A, B, tie or invalid. Invalid is never a tie and never a win;
    `invalid_reason` says why. `scores` maps label -> criterion -> 1..5.
    `p_a` is P(A wins) where the judge had token probabilities.
    """

    label: LabelVerdict
    raw: str = ""
    scores: Mapping[str, Mapping[str, float]] | None = None
    p_a: float | None = None
    reasoning: str | None = None
    invalid_reason: str | None = None
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self) -> None:
        if self.label not in ("A", "B", "tie", "invalid"):
            raise ValueError(f"judge label must be A, B, tie or invalid, not {self.label!r}")
        if self.p_a is not None and not (0.0 <= self.p_a <= 1.0):
            raise ValueError(f"p_a must be a probability, got {self.p_a}")


@dataclass(frozen=True)
class ModelSource:
    """One model or adapter a backend loads itself, declared by its optional `model_sources()` method.

    `brie-bench run` checks every one before any generation (`brie_bench.preflight`), so a
    model that is neither built in, a local folder, nor in the Hugging Face cache or
    reachable fails in seconds with one line, instead of deep inside the first call.
    `kind`: "built-in" (the backend builds it), "local" (a folder) or "hub" (a Hugging
    Face id, with its `revision` if pinned).
    """

    what: str  # "model" or "adapter"
    ref: str
    kind: Literal["built-in", "local", "hub"]
    revision: str | None = None
