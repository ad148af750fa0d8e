"""The report's "beyond length" blocks: the style-controlled and the human-calibrated win rate.

Kept out of report/model.py, which only calls `style_entry` for each judge and
`add_human_calibrated` once over all judges; the statistics are in
`brie_bench.stats.style` and `brie_bench.stats.ppi`. Both blocks carry one plain
`sentence` that the terminal, Markdown and HTML reports print as it is.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from brie_bench.report.figures import _withhold, finite, interval_dict
from brie_bench.report.rows import ItemKey, JRow
from brie_bench.stats import Draws
from brie_bench.stats.ppi import PPI_MIN_LABELLED, human_calibrated_win_rate, humans_for_width
from brie_bench.stats.style import (
    STYLE_FEATURES,
    StyleCounts,
    style_controlled_win_rate,
    style_counts,
)

#: Total interval width the planning line asks about: how many more human-labelled prompts reach it.
PPI_TARGET_WIDTH = 0.10


class _UnitsLike(Protocol):
    keys: list[ItemKey]
    outcomes: np.ndarray
    clusters: np.ndarray


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def style_entry(rows: Sequence[JRow], units: _UnitsLike, *, level: float, n_boot: int, seed: int,
                draws: Draws | None = None, withhold: str | None = None,
                counts: dict[str, StyleCounts] | None = None) -> dict[str, Any]:
    """A judge entry's `style_controlled` block (docs/report-schema.md): σ(β), each style coefficient, a sentence.

    The answers of each comparison are its stored texts (any row of it: both orders show
    the same two answers). `withhold` (the judge carries no information) blanks every figure.
    `draws`: the report's one set of draws (its `_Build`), else the statistic's own.
    `counts`: each answer text's `StyleCounts`, filled as texts are first seen. A report
    passes one dict for all its judges (every judge reads the same answers, so each is
    counted once per report, not once per judge); it holds only a pure function of the
    text, so no figure depends on it.
    """
    seen: dict[str, StyleCounts] = {} if counts is None else counts
    text = {r.item: (r.text_ft, r.text_base) for r in rows}

    def count(answer: str) -> StyleCounts:
        found = seen.get(answer)
        if found is None:
            found = seen[answer] = style_counts(answer)
        return found

    z = _style_matrix([text[k] for k in units.keys], count)
    fit = style_controlled_win_rate(units.outcomes, z, units.clusters, level=level,
                                    n_boot=n_boot, seed=seed, draws=draws)
    block: dict[str, Any] = {**interval_dict(fit.win_rate), "raw_win_rate": finite(fit.raw_win_rate),
                             "estimable": not fit.at_bound, "length_unit": "characters"}
    coefs = []
    for c in fit.coefficients:
        shown = not fit.at_bound and not c.constant
        coefs.append({"feature": c.feature, "per_sd": finite(c.coef.estimate) if shown else None,
                      "low": finite(c.coef.low) if shown else None, "high": finite(c.coef.high) if shown else None,
                      "sd": finite(c.scale), "constant": c.constant,
                      "sentence": c.sentence() if shown else None})
    block["coefficients"] = coefs
    if withhold:
        _withhold(block, withhold)
        block["raw_win_rate"] = None
        for blank in coefs:
            blank.update(per_sd=None, low=None, high=None, sentence=None)
    block["sentence"] = _style_sentence(block)
    return block


def _style_matrix(pairs: Sequence[tuple[str, str]], count: Callable[[str], StyleCounts]) -> np.ndarray:
    """`style_differences` of every (candidate, baseline) answer pair as one (n, k) array.

    The same arithmetic, over columns: a 100,000-judgment report has 80,000 such pairs,
    and one small array per pair was a second of its time. Each distinct text is counted
    once (`count`); the features are exact float64 operations on the same integers, so
    every value equals `style_differences`'.
    """
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(t, len(index)) for pair in pairs for t in pair), dtype=np.intp,
                        count=2 * len(pairs))
    table = np.array(list(map(operator.attrgetter(*STYLE_FEATURES), map(count, index))),
                     dtype=float).reshape(len(index), len(STYLE_FEATURES))
    cand, base = table[codes[0::2]], table[codes[1::2]]
    lc, lb = cand[:, 0], base[:, 0]
    total = lc + lb
    z = np.empty((len(pairs), len(STYLE_FEATURES)))
    z[:, 0] = np.divide(lc - lb, total, out=np.zeros(len(pairs)), where=total != 0)
    dc, db = cand[:, 1:] / (lc + 1.0)[:, None], base[:, 1:] / (lb + 1.0)[:, None]
    z[:, 1:] = (dc - db) / (dc + db + 1.0)
    return z


def _style_sentence(block: dict[str, Any]) -> str:
    """One line: the rate at equal style, and the style preferences whose intervals exclude zero."""
    if block["estimate"] is None:
        return f"Style-controlled win rate: {block['note'] or 'cannot be estimated'}."
    clear = [c["sentence"] for c in block["coefficients"]
             if c["sentence"] and c["sentence"].startswith("judges favour")]
    rate = (f"At equal style (length and markdown: headers, list items, bold) the candidate would win "
            f"{_pct(block['estimate'])} [{_pct(block['low'])}–{_pct(block['high'])}], against "
            f"{_pct(block['raw_win_rate'])} as judged")
    return rate + ("; " + "; ".join(clear) + "." if clear else "; no clear style preference.")


def add_human_calibrated(entries: Sequence[dict[str, Any]], units_by: Mapping[tuple[str, str], _UnitsLike], *,
                         level: float) -> None:
    """Add `human_calibrated` to each LLM judge entry whose candidate was also judged by people (PPI++).

    Y is the people's verdict on a comparison (the mean when several people judged it),
    Ŷ the judge's; the comparisons are matched by answer pair. Entries of human judges,
    and of candidates no person judged, get nothing. A judge whose verdicts carry no
    information (position or label) gets the block with its figures withheld.
    """

    humans: dict[str, list[str]] = {}
    for e in entries:
        if e.get("judge_type") == "human":
            humans.setdefault(e["candidate"], []).append(e["judge"])
    for e in entries:
        people = humans.get(e["candidate"])
        if not people or e.get("judge_type") == "human":
            continue
        judge_units = units_by.get((e["candidate"], e["judge"]))
        if judge_units is None:
            continue
        sums: dict[ItemKey, list[float]] = {}
        for person in people:
            pu = units_by.get((e["candidate"], person))
            if pu is None:
                continue
            for k, o in zip(pu.keys, pu.outcomes.tolist()):
                if o == o:
                    sums.setdefault(k, []).append(o)
        human = np.asarray([float(np.mean(sums[k])) if k in sums else np.nan for k in judge_units.keys])
        res = human_calibrated_win_rate(human, judge_units.outcomes, judge_units.clusters, level=level)
        block: dict[str, Any] = {
            **interval_dict(res.win_rate), "human_only": interval_dict(res.human_only),
            "humans": people, "n_human_verdicts": res.n_human, "n_labelled_prompts": res.n_labelled,
            "n_judged_prompts": res.n_prompts, "lambda": finite(res.lam),
            "narrower_by": finite(res.narrower_by), "target_width": PPI_TARGET_WIDTH,
        }
        need = humans_for_width(res, PPI_TARGET_WIDTH)
        block["labelled_prompts_for_target"] = need
        if e.get("information", {}).get("statement"):
            _withhold(block, e["information"]["statement"])
        block["sentence"] = _ppi_sentence(block)
        e["human_calibrated"] = block


def _ppi_sentence(block: dict[str, Any]) -> str:
    """One line: what people would say, from how many of their verdicts, and how much the judge narrowed it."""
    n, who = block["n_human_verdicts"], ", ".join(block["humans"])
    if block["estimate"] is None or block["low"] is None:
        why = block["note"] or f"fewer than {PPI_MIN_LABELLED} prompts judged by people"
        return f"Human-calibrated win rate (from {n} human verdicts by {who}): {why}."
    ho = block["human_only"]
    gain = block["narrower_by"]
    text = (f"People ({who}) would give the candidate {_pct(block['estimate'])} [{_pct(block['low'])}–"
            f"{_pct(block['high'])}] (PPI++ from {n} human verdicts on {block['n_labelled_prompts']} prompts and this "
            f"judge's verdicts on {block['n_judged_prompts']}); people alone: {_pct(ho['estimate'])} "
            f"[{_pct(ho['low'])}–{_pct(ho['high'])}]")
    if gain is not None and gain > 0:
        text += f", an interval {gain:.0%} narrower"
    need = block["labelled_prompts_for_target"]
    if need is not None and need > block["n_labelled_prompts"]:
        text += (f"; about {need - block['n_labelled_prompts']} more human-judged prompts would narrow it to "
                 f"{block['target_width'] * 100:.0f} points")
    return text + "."
