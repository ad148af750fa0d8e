"""`collector_paused()`: Python's cyclic garbage collector held off while a report loads and computes.

Why: loading a 100,000-judgment run makes a few hundred thousand tuples, strings, dicts and
records, and computing its report a few hundred thousand more; almost none of them is ever
part of a reference cycle, so the collector finds nothing to free. It still runs every few
hundred allocations of a container, and each older-generation pass walks every object
made so far. Measured side by side in fresh processes (benchmarks/report_scale.py, 100,000
judgments), those passes were 0.4-1 s of a 4-5 s report. Plain reference counting still
frees everything as before; only cycles wait, and the collector runs again at the end.

Process-wide and thread-safe in effect: the collector is re-enabled by whichever pause
began while it was enabled, so overlapping pauses in several threads (the viewer building
two reports at once) leave it enabled once the first of them ends, never disabled for good.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold off the cyclic collector for the block; re-enable it after, if it was enabled before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
