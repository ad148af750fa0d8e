"""The browsable list of comparisons: one entry per pair of answers, every judge's answer under it.

This is the data the HTML report's list is drawn from (in the browser, page by
page, with `textContent` only, so model output can never become markup). It is
kept compact because a run can hold 10,000 judgments: contender, judge and
section names and prompt texts are stored once and referred to by index, and
each answer text appears once per comparison, not once per judgment.

Blindness: the two answers are shown as "Answer 1" and "Answer 2" in an order
drawn from a hash of the comparison, so neither position means "fine-tune".
The page unblinds only when the reader asks.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from brie_bench import stats
from brie_bench.report.rows import ItemKey, JRow, RunData


def _candidate_first(key: ItemKey) -> bool:
    digest = hashlib.sha256(f"{key.section}\x1f{key.prompt_id}\x1f{key.sample_index}\x1f{key.candidate}".encode())
    return digest.digest()[0] & 1 == 1


def _code(x: float) -> float | None:
    return None if math.isnan(x) else x


def comparison_items(data: RunData) -> dict[str, Any]:
    """Compact, JSON-ready data for every comparison in the run (see module docstring for the layout)."""
    prompt_texts = data.prompt_texts()
    sections: dict[str, int] = {}
    contenders: dict[str, int] = {}
    judges: dict[str, int] = {}
    prompts: dict[tuple[str, str], int] = {}
    by_item: dict[ItemKey, list[JRow]] = {}
    for r in data.rows:
        by_item.setdefault(r.item, []).append(r)
    # Suite order (sections, then prompts as written), not the store's alphabetical order.
    section_pos = {name: i for i, name in enumerate(data.section_order())}
    prompt_pos = {key: i for i, key in enumerate(prompt_texts)}
    order = sorted(by_item, key=lambda k: (section_pos.get(k.section, len(section_pos)),
                                           prompt_pos.get((k.section, k.prompt_id), len(prompt_pos)),
                                           k.prompt_id, k.sample_index, k.candidate))
    items = []
    for key in order:
        rows = by_item[key]
        sections.setdefault(key.section, len(sections))
        contenders.setdefault(key.baseline, len(contenders))
        contenders.setdefault(key.candidate, len(contenders))
        pk = (key.section, key.prompt_id)
        prompts.setdefault(pk, len(prompts))
        cand_first = _candidate_first(key)
        first = rows[0]
        a1, a2 = (first.text_ft, first.text_base) if cand_first else (first.text_base, first.text_ft)
        judged = []
        per_judge: dict[str, dict[int, float]] = {}
        for r in sorted(rows, key=lambda r: (r.judge, r.presentation_order)):
            judges.setdefault(r.judge, len(judges))
            # Which answer (1 or 2) carried label A in this judgment.
            a_is_1 = r.ft_is_a == cand_first
            judged.append([judges[r.judge], r.presentation_order, 1 if a_is_1 else 0, r.verdict, _code(r.outcome), r.raw,
                           r.invalid_reason or "", r.first_label])
            per_judge.setdefault(r.judge, {})[r.presentation_order] = r.outcome
        flags = []
        combined = []
        for orders in per_judge.values():
            if 0 in orders and 1 in orders:
                both_valid = not (math.isnan(orders[0]) or math.isnan(orders[1]))
                if both_valid and orders[0] != orders[1]:
                    flags.append("flip")
                combined.append(stats.combine_orders(orders[0], orders[1]))
            else:
                combined.append(next(iter(orders.values())))
        valid = {o for o in combined if not math.isnan(o)}
        if len(valid) > 1:
            flags.append("disagree")
        if any(math.isnan(r.outcome) for r in rows):
            flags.append("invalid")
        items.append({"s": sections[key.section], "p": prompts[pk], "id": key.prompt_id, "k": key.sample_index,
                      "c": contenders[key.candidate], "b": contenders[key.baseline], "cf": 1 if cand_first else 0,
                      "a1": a1, "a2": a2, "fl": sorted(set(flags)), "j": judged})
    prompt_list = [""] * len(prompts)
    for (section, pid), i in prompts.items():
        prompt_list[i] = prompt_texts.get((section, pid), "")
    return {"sections": list(sections), "contenders": list(contenders), "judges": list(judges),
            "prompts": prompt_list, "items": items, "legacy": data.legacy}
