"""A stored pilot run's variance per judge, for `run SUITE --power --pilot RUN` (`brie_bench.planning`).

It lives with the report because it reads a run exactly as the report does: the same
collapse of both orders into one comparison (`comparisons_of`) and the same rule for a judge
that carries no information (`information_of`). Planning receives the result as plain
data (`planning.PilotVariance`) and never imports the report or the store.
"""

from __future__ import annotations

from brie_bench import power
from brie_bench.errors import InputError
from brie_bench.planning import PilotVariance
from brie_bench.store import Store


def pilot_variance(store: Store, pilot: str) -> PilotVariance:
    """Per judge, the variance components measured on a stored pilot run, and why any judge was passed over.

    A judge is usable only when its outcomes have a spread to measure (`power.degenerate_reason`:
    not all ties, not all one way, some valid verdict) and its verdicts carry information
    (`stats.bias.judge_information`: not explained by position or label). Planning from
    anything else would promise a precision, or a variance, the judge never showed.
    """
    from brie_bench.report.model import comparisons_of, information_of
    from brie_bench.report.rows import group_by, load_run

    try:
        data = load_run(store, pilot)
    except Exception as exc:  # noqa: BLE001 - an unknown run id is bad input, whatever the store raises
        raise InputError(f"--pilot: no run {pilot!r} in the database ({exc})") from None
    out: dict[str, power.VarianceComponents] = {}
    skipped: list[str] = []
    for (_cand, judge), rows in group_by(data.rows, "item.candidate", "judge").items():
        comparisons = comparisons_of(rows)
        comp = power.decompose(comparisons.outcomes, comparisons.clusters, [(a, b) for _, a, b in comparisons.pairs])
        reason = information_of(rows, comparisons).reason or power.degenerate_reason(comp)
        if reason:
            skipped.append(f"{judge}: {reason}")
        elif judge not in out:
            out[judge] = comp
    judged = {r.judge for r in data.rows}
    skipped += [f"{name}: no stored verdict" for name in (data.run.metadata.get("judges") or {})
                if name not in judged]
    return PilotVariance(pilot, out, skipped)
