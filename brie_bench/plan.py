"""Expand a suite into stable work units.

A generation unit is (contender × prompt × settings × sample); a judgment unit
is (pair × judge × order). Each unit's key is a hash of its *content* —
backend identity, messages, sampling parameters, sample index, judge identity
and template — so a rerun finds what is already stored and a changed setting
gets a new key. Generation keys carry no section name: the same request is
the same generation wherever it appears. Judgment keys do carry the section,
since a verdict belongs to one section's comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping

from brie_bench.api import Judge, ModelBackend, stable_hash
from brie_bench.blinding import Assignment, assignment_for_order, draw_assignment
from brie_bench.records import GenerationRequest, Message, SamplingParams
from brie_bench.suite import Prompt, Section, Settings, Suite

KEY_VERSION = 1


@dataclass(frozen=True)
class GenerationUnit:
    key: str
    contender: str
    request: GenerationRequest
    sample_index: int


@dataclass(frozen=True)
class GenerationLink:
    section: str
    prompt_id: str
    sample_index: int
    contender: str
    key: str


@dataclass(frozen=True)
class JudgmentUnit:
    """One verdict to ask of one judge: a pair's answers in one of its two presentations.

    `presentation_order` is 0 or 1: which of the pair's two mirror-image presentations
    the judge sees. 0 is the drawn label assignment, 1 its mirror (labels swapped, under
    `orders: both`); the answer labelled A is always printed first, so the mirror also
    swaps which answer comes first (`blinding.assignment_for_order`).
    """

    key: str
    section: str
    prompt: Prompt
    sample_index: int
    judge: str
    baseline: str
    candidate: str
    presentation_order: int
    assignment: Assignment
    gen_keys: tuple[tuple[str, str], ...]  # ((contender, generation key), ...)
    criteria: tuple[str, ...]
    system_prompt: str | None

    def gen_key(self, contender: str) -> str:
        return dict(self.gen_keys)[contender]


@dataclass
class Plan:
    generations: list[GenerationUnit] = field(default_factory=list)
    links: list[GenerationLink] = field(default_factory=list)
    judgments: list[JudgmentUnit] = field(default_factory=list)

    def sections(self) -> list[str]:
        seen: dict[str, None] = {}
        for link in self.links:
            seen.setdefault(link.section, None)
        return list(seen)


def messages_for(section: Section, prompt: Prompt) -> tuple[Message, ...]:
    msgs: list[Message] = []
    if section.settings.system_prompt:
        msgs.append(Message("system", section.settings.system_prompt))
    msgs.append(Message("user", prompt.text))
    return tuple(msgs)


def params_for(section: Section, sample_index: int) -> SamplingParams:
    s = section.settings
    return SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                          seed=(s.seed or 0) + sample_index)


def generation_key(backend: ModelBackend, request: GenerationRequest, sample_index: int) -> str:
    return stable_hash({
        "v": KEY_VERSION,
        "contender": backend.identity(),
        "messages": [m.to_dict() for m in request.messages],
        "params": request.params.to_dict(),
        "sample": sample_index,
    })


def pairs_for(suite: Suite) -> list[tuple[str, str]]:
    """(baseline, candidate) for every candidate: each fine-tune is compared with the baseline."""
    return [(suite.baseline, c) for c in suite.candidates]


def build_plan(suite: Suite, contenders: Mapping[str, ModelBackend], judges: Mapping[str, Judge],
               run_seed: int) -> Plan:
    plan = Plan()
    seen_gen: set[str] = set()
    for section in suite.sections:
        for prompt in section.prompts:
            messages = messages_for(section, prompt)
            for sample in range(section.settings.samples):
                request = GenerationRequest(messages=messages, params=params_for(section, sample))
                keys: dict[str, str] = {}
                for name, backend in contenders.items():
                    key = generation_key(backend, request, sample)
                    keys[name] = key
                    plan.links.append(GenerationLink(section.name, prompt.id, sample, name, key))
                    if key not in seen_gen:
                        seen_gen.add(key)
                        plan.generations.append(GenerationUnit(key, name, request, sample))
                for baseline, candidate in pairs_for(suite):
                    for judge_name in section.judges:
                        plan.judgments.extend(judgment_units(
                            section=section.name, settings=section.settings, prompt=prompt, sample_index=sample,
                            pair=(baseline, candidate), gen_keys=(keys[baseline], keys[candidate]),
                            judge_name=judge_name, judge=judges[judge_name], run_seed=run_seed))
    return plan


def judgment_units(*, section: str, settings: Settings, prompt: Prompt, sample_index: int, pair: tuple[str, str],
                   gen_keys: tuple[str, str], judge_name: str, judge: Judge, run_seed: int) -> list[JudgmentUnit]:
    """The judgment units of one (baseline, candidate) pair for one judge: one per order.

    Also used by the browser judging page (`brie_bench.web`) to plan a person's
    comparisons of a stored run, so a verdict given there has the same key and
    the same drawn assignment as one given by a `human` judge of the same name.
    """
    baseline, candidate = pair
    base_key = stable_hash({
        "v": KEY_VERSION, "section": section, "judge_name": judge_name,
        "judge": judge.identity(), "criteria": list(settings.criteria),
        "gens": list(gen_keys), "pair": [baseline, candidate],
    })
    drawn = draw_assignment(run_seed, base_key, (baseline, candidate))
    orders = (0, 1) if settings.orders == "both" else (0,)
    return [JudgmentUnit(key=f"{base_key[:40]}-{order}", section=section, prompt=prompt,
                         sample_index=sample_index, judge=judge_name, baseline=baseline, candidate=candidate,
                         presentation_order=order, assignment=assignment_for_order(drawn, order),
                         gen_keys=((baseline, gen_keys[0]), (candidate, gen_keys[1])),
                         criteria=tuple(settings.criteria), system_prompt=settings.system_prompt)
            for order in orders]
