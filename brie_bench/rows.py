"""The stored rows: one `GenerationRow` per answer, one `JudgmentRow` per verdict.

These are the seam between whoever produces a row (the engine, the browser judging
page, the legacy import, the benchmarks' synthetic runs) and the store that writes
it: each column is named once, here, with its type. They are kept apart from
`brie_bench.records` on purpose: records are the plugin contract (what a plugin
receives and returns, re-exported by `brie_bench.api`), while these rows are the
core's storage format, which plugins never see and which may change with the schema.

The report does not read judgments back as `JudgmentRow` objects: at 100k judgments
one Python object per row is most of the report's load time, so `report/rows.py`
reads the columns it needs as tuples (`JUDGMENT_COLUMNS` names them, in table
order) and codes them straight into its own `JRow`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class JudgmentRow:
    """One verdict as the `judgments` table holds it (one row per run and judgment unit key).

    `verdict` is over labels (A, B, tie, invalid); `winner` is the contender it names,
    through `blinding.unblind` (None when invalid), "tie" for a tie. `scores` maps
    label -> criterion -> score and is stored as JSON. `created_at` is filled in by
    the store when None.

    `presentation_order` is 0 or 1: which of the pair's two mirror-image presentations
    the judge saw. In runs made by Brie Bench, 0 is the drawn label assignment and 1 its
    mirror (labels swapped; the answer labelled A is always printed first). In imported
    legacy runs the labels never moved (A = baseline) and the mirror swaps the print
    order (0 = A printed first, 1 = B first). Which label was printed first is
    `report.jrow.JRow.first_label`. Databases before schema version 3 call the column
    ``order_index``.
    """

    run_id: str
    unit_key: str
    section: str
    prompt_id: str
    sample_index: int
    judge: str
    judge_type: str
    baseline: str
    candidate: str
    presentation_order: int
    label_a: str
    label_b: str
    gen_key_a: str
    gen_key_b: str
    verdict: str
    winner: str | None
    raw: str
    judge_model: str | None = None
    p_a: float | None = None
    scores: Mapping[str, Mapping[str, Any]] | None = None
    reasoning: str | None = None
    invalid_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float | None = None
    created_at: float | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> JudgmentRow:
        """A row from a column -> value mapping; an unknown column is a `ValueError` naming it."""
        return cls(**_checked(cls, row))

    def columns(self) -> dict[str, Any]:
        """Column -> value, as the store binds them (scores still a mapping)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GenerationRow:
    """One answer as the `generations` table holds it, keyed by its content-derived unit key.

    `spec` is the backend's identity, `messages` and `params` the request; the three are
    stored as JSON. Generations belong to no run: `run_generations` links them.
    """

    key: str
    backend: str
    model: str
    spec: Mapping[str, Any]
    messages: list[dict[str, str]]
    params: Mapping[str, Any]
    sample_index: int
    text: str
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float | None = None
    created_at: float | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> GenerationRow:
        """A row from a column -> value mapping; an unknown column is a `ValueError` naming it."""
        return cls(**_checked(cls, row))


#: The `judgments` table's columns, in the order `JudgmentRow` declares them.
JUDGMENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(JudgmentRow))
#: The `generations` table's columns: those `GenerationRow` declares, in its order, then `features`,
#: which the store works out from `text` as it saves the row (`brie_bench.answer_features`).
GENERATION_COLUMNS: tuple[str, ...] = (*(f.name for f in fields(GenerationRow)), "features")


def _checked(cls: type[Any], row: Mapping[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(row) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no column {', '.join(map(repr, unknown))}")
    return dict(row)
