"""What one *call* is, defined once for the run summary, the cost table, the JSON report and the docs.

Why: a batched local model answers 8 requests in one forward pass, a remote API answers
one per HTTP request, and a provider's batch API answers hundreds per submission. Counting
"requests" would make the same suite cost 98 calls on one backend and 144 on another, and
the summary would disagree with the cost table (which counts stored answers). So:

    A call is one answer or one verdict asked of a model. A batch of 8 answers is 8 calls.
    A failed attempt is a call too (and, when it is tried again, a retry). Polling a
    provider's batch for results asks for no answer and is not a call.

For a fresh run with no failures, the summary's "model calls" therefore equals the cost
table's calls: answers stored plus verdicts stored.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DEFINITION", "weight"]

#: The one sentence the docs and the report repeat.
DEFINITION = "a call is one answer or one verdict asked of a model: a batch of 8 answers is 8 calls"

#: Unit kinds that ask for no answer (`brie_bench.batches` polls a submitted batch).
_NOT_ANSWERS = ("batch_poll",)


def weight(unit_kind: str, unit_keys: Sequence[str]) -> int:
    """How many calls one attempt at `unit_keys` makes: one per unit, none for a batch poll."""
    return 0 if unit_kind in _NOT_ANSWERS else len(unit_keys)
