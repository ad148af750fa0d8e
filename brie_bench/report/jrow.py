"""One stored judgment as the report reads it: `ItemKey` (a comparison) and `JRow` (a coded judgment).

Kept apart from `report.rows` (the loader) so that `report.columns`, which codes the
same judgments into arrays, can name them without importing the loader back.
`report.rows` re-exports both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NAN = float("nan")


@dataclass(frozen=True)
class ItemKey:
    """One comparison between two answers, independent of the judge.

    `prompt_key` (the normalised prompt text) is not part of equality: it only names
    the cluster. `replicate` is: a legacy re-judgment is a unit of its own.
    """

    section: str
    prompt_id: str
    sample_index: int
    baseline: str
    candidate: str
    replicate: int = 0
    prompt_key: str = field(default="", compare=False)
    #: The hash and the cluster name, computed once: every table groups rows by their ItemKey and
    #: their prompt, 100,000s of times in a large run.
    _hash: int = field(default=0, init=False, repr=False, compare=False)
    _cluster: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.section, self.prompt_id, self.sample_index, self.baseline,
                                                self.candidate, self.replicate)))
        object.__setattr__(self, "_cluster", self.prompt_key or f"{self.section}\x1f{self.prompt_id}")

    def __hash__(self) -> int:
        return self._hash

    @property
    def cluster(self) -> str:
        """The prompt this comparison belongs to: the unit the confidence interval resamples."""
        return self._cluster


@dataclass(slots=True)
class JRow:
    """One stored judgment, coded from the candidate's point of view.

    `presentation_order` is 0 or 1: which of the pair's two mirror-image presentations the
    judge saw. In runs made by Brie Bench, 0 is the drawn label assignment and 1 its mirror
    (labels swapped; the answer labelled A is always printed first). In imported legacy runs
    the labels never moved (A = baseline) and the mirror swaps the print order (0 = A printed
    first, 1 = B first). Which label was printed first is `first_label`.
    """

    item: ItemKey
    unit_key: str
    judge: str
    judge_type: str
    judge_model: str | None
    presentation_order: int
    label_a: str
    label_b: str
    verdict: str
    winner: str | None
    outcome: float
    ft_is_a: bool
    first_label: str
    p_ft: float
    scores_ft: dict[str, float]
    scores_base: dict[str, float]
    text_ft: str
    text_base: str
    raw: str
    reasoning: str | None
    invalid_reason: str | None
    input_tokens: int
    output_tokens: int
    latency_s: float | None
    #: The stored judge and its model: equal to `judge` and `judge_model` unless a family groups judges.
    member: str = ""
    member_model: str | None = None
    #: The judgment's place in the store's insertion order (its SQLite rowid): what "stored order" means.
    seq: int = -1
