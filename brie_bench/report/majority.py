"""When the report shows a majority-vote row, and what it says instead when it does not.

With two voting judges every disagreement is a tie, so the majority vote is just the
comparisons both judges agree on, plus a tie for each other one: a row such as
`majority vote 0 1 7` reads as a finding while it only restates the agreement figure.
The terminal, Markdown and HTML reports therefore show the row only with three or more
voting judges and say why on the agreement line otherwise; the JSON keeps the figures.
"""

from __future__ import annotations

from brie_bench.report.schema import Agreement

#: The fewest voting judges for which a majority vote says more than the agreement does.
MIN_VOTERS = 3


def voters(ag: Agreement) -> list[str]:
    """The judges that vote: those with information (`majority_vote.judges`)."""
    return list(ag.majority_vote.judges)


def majority_note(ag: Agreement) -> str | None:
    """None when the majority-vote row is shown; otherwise the sentence that says why it is not."""
    n = len(voters(ag))
    if n >= MIN_VOTERS:
        return None
    if n == 2:
        return ("no majority-vote row: with 2 judges every disagreement is a tie, "
                "so it would only restate this agreement")
    return f"no majority-vote row: {n} judge{'' if n == 1 else 's'} with information, so there is no vote"
