"""The blinding contract: the only place where labels meet contender names.

1. An `Assignment` says which contender is labelled "A" (always shown first)
   and which "B". It is drawn from a generator seeded by (run seed, unit key),
   so a resumed run draws the same one, and it is stored with the judgment.
2. `blind` builds what the judge sees from the prompt and the two texts only.
3. The judge answers over labels: A, B, tie or invalid.
4. `unblind` maps a label verdict back through the assignment; a pure function.
5. Under `orders: both` every pair is judged once per assignment; `order_flip`
   gives the second, mirrored assignment and `consistent` compares the two.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Literal
from collections.abc import Mapping

from brie_bench.records import BlindedPair, Label, LabelVerdict

TIE = "tie"
Winner = str | None  # winning contender name, "tie", or None for invalid (after unblinding)


@dataclass(frozen=True)
class Assignment:
    """Which contender carries label A (shown first) and which label B."""

    a: str
    b: str

    def __post_init__(self) -> None:
        if self.a == self.b:
            raise ValueError("an assignment needs two different contenders")
        if TIE in (self.a, self.b):
            raise ValueError(f"{TIE!r} cannot be a contender name")

    def contender(self, label: Label) -> str:
        return self.a if label == "A" else self.b

    def label_of(self, contender: str) -> Label:
        if contender == self.a:
            return "A"
        if contender == self.b:
            return "B"
        raise KeyError(contender)

    def flipped(self) -> Assignment:
        return Assignment(self.b, self.a)


def draw_assignment(run_seed: int, unit_key: str, pair: tuple[str, str]) -> Assignment:
    """Seeded coin flip for one judgment unit: same (seed, key) → same assignment, always.

    The pair is sorted first so the draw does not depend on how the caller
    ordered the two contenders.
    """
    first, second = sorted(pair)
    digest = hashlib.sha256(f"{run_seed}:{unit_key}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    return Assignment(first, second) if rng.random() < 0.5 else Assignment(second, first)


def assignment_for_order(base: Assignment, presentation_order: int) -> Assignment:
    """Presentation 0 uses the drawn assignment, presentation 1 (under `orders: both`) its mirror:
    the labels swapped, and with them which answer is printed first (label A always is)."""
    if presentation_order not in (0, 1):
        raise ValueError("presentation_order is 0 or 1")
    return base if presentation_order == 0 else base.flipped()


def blind(prompt: str, texts: Mapping[str, str], assignment: Assignment, *,
          criteria: tuple[str, ...], system_prompt: str | None = None) -> BlindedPair:
    """What the judge sees: the prompt and the two answers under their labels, nothing else."""
    return BlindedPair(prompt=prompt, answer_a=texts[assignment.a], answer_b=texts[assignment.b],
                       criteria=tuple(criteria), system_prompt=system_prompt)


def unblind(verdict: LabelVerdict, assignment: Assignment) -> Winner:
    """Map a label verdict to the winning contender, "tie", or None (invalid)."""
    if verdict == "A":
        return assignment.a
    if verdict == "B":
        return assignment.b
    if verdict == TIE:
        return TIE
    if verdict == "invalid":
        return None
    raise ValueError(f"not a label verdict: {verdict!r}")


Consistency = Literal["consistent", "inconsistent", "incomplete"]


def consistent(first: Winner, second: Winner) -> Consistency:
    """Compare the unblinded winners of one pair judged in both orders."""
    if first is None or second is None:
        return "incomplete"
    return "consistent" if first == second else "inconsistent"
