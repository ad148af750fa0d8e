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
and its leases are taken over without waiting for them to expire; one whose pid
is alive keeps its leases whatever their expiry says (a wall clock that jumped
must not hand a live peer's units to another process). Expiry decides only
between hosts, where no pid can be asked. A unit held by a peer is put aside and
looked at again every `poll_s` seconds until it is stored, failed, or free.

`BRIE_BENCH_LEASE_S` sets the lease length (default 60 s): the longest a dead
process's units on another host wait before a process takes them over.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from brie_bench.store_api import Store, is_database_error

def lease_seconds() -> float:
    """`BRIE_BENCH_LEASE_S` (default `envvars.DEFAULT_LEASE_S`), read through `envvars`: a bad value is one
    line naming the variable (exit 2), never a NULL expiry."""
    from brie_bench import envvars

    return envvars.lease_s()


#: Owners of the `Leases` open in this process: this process's own pid is alive, yet a lease of
#: an owner closed (or abandoned by a failed in-process run) is not held by anyone.
_OPEN_OWNERS: set[str] = set()


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # it exists (owned by another user) or cannot be asked: never take it over
    return True


class Leases:
    """One process's leases on one store; `close` gives back whatever it still holds.

    Times are read from `now`: the wall clock at start plus the monotonic time since, so a
    wall clock that jumps during the run (NTP, a suspended laptop, a user) neither lapses
    this process's leases nor makes a peer's look expired. Across hosts the stored expiry is
    still a wall-clock time: hosts sharing a database need roughly synchronised clocks.
    """

    def __init__(self, store: Store, *, ttl_s: float | None = None) -> None:
        self.store = store
        self.ttl_s = ttl_s or lease_seconds()
        self.poll_s = min(0.5, self.ttl_s / 4)
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wall0 = store.clock()  # the server's clock on PostgreSQL: one clock for every host
        self._mono0 = time.monotonic()
        self.since = self._wall0
        _OPEN_OWNERS.add(self.owner)
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None
        if store.persistent:
            # Opened now: on PostgreSQL the keeper's session is what tells peers this owner lives.
            self._renewer = store.lease_keeper(self.owner)
            self._keeper = threading.Thread(target=self._renew_forever, name="brie-bench-leases", daemon=True)
            self._keeper.start()

    def now(self) -> float:
        """A wall-clock time that only moves forward with the monotonic clock (see the class)."""
        return self._wall0 + (time.monotonic() - self._mono0)

    def claim(self, keys: Sequence[str], stored: Callable[[], bool] | None = None) -> str:
        """"claimed", "stored", "held" or "failed": see `Store.claim`."""
        return self.store.claim(self.owner, keys, ttl_s=self.ttl_s, since=self.since, stored=stored, gone=self.gone,
                                live=self.live, now=self.now())

    def state(self, keys: Sequence[str]) -> str:
        return self.store.lease_state(self.owner, keys, since=self.since, gone=self.gone, live=self.live,
                                      now=self.now())

    def _local_pid(self, owner: str) -> int | None:
        """The pid of `owner` when it is a process on this host, else None (not known)."""
        rest = owner.rsplit(":", 2)  # host, pid, nonce
        if len(rest) != 3 or rest[0] != self.host or not rest[1].isdigit():
            return None
        return int(rest[1])

    def gone(self, owner: str) -> bool:
        """Is `owner` a process on this host that no longer exists? (Elsewhere: not known, so no.)"""
        pid = self._local_pid(owner)
        if pid is None:
            return False
        if pid == os.getpid():
            return owner not in _OPEN_OWNERS
        return not _pid_alive(pid)

    def live(self, owner: str) -> bool:
        """Is `owner` a process on this host that is alive? Its leases are never taken over, expired or not.

        Why not trust the expiry here: a clock that jumped (in either process) makes a live
        peer's leases look expired, and its units were paid for twice.
        """
        pid = self._local_pid(owner)
        if pid is None:
            return False
        if pid == os.getpid():
            return owner in _OPEN_OWNERS
        return _pid_alive(pid)

    def done(self, keys: Sequence[str]) -> None:
        self.store.release(self.owner, keys, now=self.now())

    def failed(self, keys: Sequence[str]) -> None:
        self.store.release(self.owner, keys, failed=True, now=self.now())

    def close(self) -> None:
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join(timeout=5)
        try:
            self.store.release_all(self.owner)
        finally:
            _OPEN_OWNERS.discard(self.owner)

    def _renew_forever(self) -> None:
        """Runs in its own thread with its own connection, so a busy event loop cannot let leases lapse."""
        try:
            while not self._stop.wait(self.ttl_s / 3):
                try:
                    self._renewer.renew(self.ttl_s, self.now())
                except Exception as exc:  # try again next time; a lapsed lease costs at most a repeated call
                    if not is_database_error(exc):
                        raise
        finally:
            self._renewer.close()
