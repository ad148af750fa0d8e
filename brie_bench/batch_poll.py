"""`BatchPoll`: what a backend's `poll_batch` reports about one provider batch.

A public module of its own (not `brie_bench.api`) because only backends with a
provider batch API need it; `brie_bench.api.BatchBackend` declares the two
methods that use it, and the engine's batch judging (`brie_bench.batches`)
reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from brie_bench.errors import CallError
from brie_bench.records import GenerationResult


@dataclass
class BatchPoll:
    """The state of a provider batch, as `BatchBackend.poll_batch` reports it.

    `results` maps each custom id (the judgment's unit key) to its result or to
    the error that item got (a `TransientError` when resubmitting may help);
    `done` is True once the provider has finished the batch; `counts` are the
    provider's own request counts.
    """

    done: bool
    results: dict[str, GenerationResult | CallError] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    status: str = ""
