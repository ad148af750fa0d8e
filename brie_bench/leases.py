"""Unit leases: how several processes on one database share a run and call each unit once.

Before a unit (a generation batch, a judgment, a batch judge's whole share) is
called, its engine claims a lease on it in the store, in the same transaction
that checks it is not stored yet. A lease lasts `ttl_s` seconds; a thread
renews every lease its process holds every `ttl_s / 3` seconds while the
process lives. When the work is stored the lease is deleted; when it fails for
good the lease is marked failed, so the peers running alongside do not call
it again (a later rerun does). A process that dies stops renewing: its leases
expire and the others take those units over. An owner is "host:pid:nonce", so
a process on the same host whose pid no longer exists is known dead at once
and its leases are taken over without waiting for them to expire. A unit held
by a peer is put aside and looked at again every `poll_s` seconds until it is
stored, failed, or free.

`BRIE_BENCH_LEASE_S` sets the lease length (default 60 s): the longest a dead
process's units wait before another process takes them over.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from brie_bench.store import Store

DEFAULT_LEASE_S = 60.0


def lease_seconds() -> float:
    try:
        value = float(os.environ.get("BRIE_BENCH_LEASE_S", DEFAULT_LEASE_S))
    except ValueError:
        return DEFAULT_LEASE_S
    return min(max(value, 0.5), 86_400.0)


class Leases:
    """One process's leases on one store; `close` gives back whatever it still holds."""

    def __init__(self, store: Store, *, ttl_s: float | None = None) -> None:
        self.store = store
        self.ttl_s = ttl_s or lease_seconds()
        self.poll_s = min(0.5, self.ttl_s / 4)
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.since = time.time()
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None
        if store.path != ":memory:":
            self._keeper = threading.Thread(target=self._renew_forever, name="brie-bench-leases", daemon=True)
            self._keeper.start()

    def claim(self, keys: Sequence[str], stored: Callable[[], bool] | None = None) -> str:
        """"claimed", "stored", "held" or "failed": see `Store.claim`."""
        return self.store.claim(self.owner, keys, ttl_s=self.ttl_s, since=self.since, stored=stored, gone=self.gone)

    def state(self, keys: Sequence[str]) -> str:
        return self.store.lease_state(self.owner, keys, since=self.since, gone=self.gone)

    def gone(self, owner: str) -> bool:
        """Is `owner` a process on this host that no longer exists? (Elsewhere: not known, so no.)"""
        rest = owner.rsplit(":", 2)  # host, pid, nonce
        if len(rest) != 3 or rest[0] != self.host or not rest[1].isdigit():
            return False
        try:
            os.kill(int(rest[1]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OverflowError, OSError):
            return False  # it exists (owned by another user) or cannot be asked
        return False

    def done(self, keys: Sequence[str]) -> None:
        self.store.release(self.owner, keys)

    def failed(self, keys: Sequence[str]) -> None:
        self.store.release(self.owner, keys, failed=True)

    def close(self) -> None:
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join(timeout=5)
        self.store.release_all(self.owner)

    def _renew_forever(self) -> None:
        """Runs in its own thread with its own connection, so a busy event loop cannot let leases lapse."""
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.ttl_s / 3):
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.store.path, timeout=self.ttl_s / 3)
                    with conn:
                        conn.execute("UPDATE leases SET expires_at=? WHERE owner=? AND state='held'",
                                     (time.time() + self.ttl_s, self.owner))
                except sqlite3.Error:
                    continue  # try again next time; a lease that lapses meanwhile costs at most a repeated call
        finally:
            if conn is not None:
                conn.close()
