"""The `rubric` judge: a model scores both answers against a rubric; weights decide the verdict."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from brie_bench.api import (BlindedPair, GenerationRequest, Judge, JudgeContext, JudgeOptions, JudgeResult,
                            Message, ModelBackend, PermanentError, SamplingParams)

from brie_bench_rubric_judge.rubric import (last_json_object, load_rubric, read_scores, render_request,
                                            response_schema, weighted_verdict)


class RubricOptions(JudgeOptions):
    """Options of the `rubric` judge (shown by `brie-bench plugins --verbose`)."""

    rubric: str = Field(description="path to the rubric YAML file (criteria, descriptions, weights)")
    weights: dict[str, float] = Field(default_factory=dict,
                                      description="override some criteria's weights, e.g. {depth: 3}")
    tie_margin: float = Field(default=0.25, ge=0.0, le=4.0,
                              description="weighted means this close (1-5 scale) make a tie")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="grading model temperature")
    max_tokens: int = Field(default=800, ge=16, le=100_000, description="most tokens the grading model may write")


class RubricJudge(Judge):
    """Asks any registered backend to grade both answers on a rubric, then weighs the scores."""

    name: ClassVar[str] = "rubric"
    description: ClassVar[str] = "a model scores both answers on a rubric file; weights make the verdict"
    Options: ClassVar[type[RubricOptions]] = RubricOptions
    needs_backend: ClassVar[bool] = True

    options: RubricOptions

    def __init__(self, options: RubricOptions, backend: ModelBackend | None, context: JudgeContext) -> None:
        super().__init__(options, backend, context)
        # Read the rubric now, so a missing file or a bad weight fails before any model call.
        self.rubric = load_rubric(options.rubric).with_weights(options.weights)

    def identity(self) -> dict[str, Any]:
        """The rubric's *content* and the weights in force, not the file's path."""
        return {
            "judge": self.name,
            "rubric_sha256": self.rubric.sha256,
            "weights": {c.name: c.weight for c in self.rubric.criteria},
            "tie_margin": self.options.tie_margin,
            "temperature": self.options.temperature,
            "max_tokens": self.options.max_tokens,
            "backend": self.backend.identity() if self.backend else None,
        }

    async def judge(self, pair: BlindedPair) -> JudgeResult:
        """Backend errors propagate unchanged: the engine retries transient ones."""
        if self.backend is None:
            raise PermanentError("the rubric judge needs a backend", kind="config")
        request = GenerationRequest(
            messages=(Message("user", render_request(self.rubric, pair.prompt, pair.answer_a, pair.answer_b)),),
            params=SamplingParams(temperature=self.options.temperature, top_p=1.0,
                                  max_tokens=self.options.max_tokens, seed=self.context.seed),
            response_schema=response_schema(self.rubric), schema_name="rubric_scores")
        result = await self.backend.generate(request)
        obj = result.structured if result.structured is not None else last_json_object(result.text or "")
        scores, problem = read_scores(obj, self.rubric)
        if scores is None:
            return JudgeResult("invalid", raw=result.text or "", invalid_reason=problem, usage=result.usage)
        label, mean_a, mean_b = weighted_verdict(scores, self.rubric, self.options.tie_margin)
        reasoning = obj.get("reasoning") if isinstance(obj, dict) else None
        return JudgeResult(label, raw=result.text or "", scores=scores, usage=result.usage,  # type: ignore[arg-type]
                           reasoning=(f"weighted A={mean_a:.2f} B={mean_b:.2f}"
                                      + (f"; {reasoning}" if isinstance(reasoning, str) and reasoning else "")))
