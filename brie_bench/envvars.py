"""Every environment variable Brie Bench reads, read through one typed reader each.

Why one module: a variable is user input like a suite field, so a bad value
must be refused in one line that names it (exit 2), never silently replaced
by a default nor passed on to crash somewhere far away
(``BRIE_BENCH_LEASE_S=nan`` once reached SQLite as a NULL lease expiry). The
readers raise `InputError` with the variable's name as the field; `check_all`
reads every variable in `VARIABLES` and is called by the CLI group before any
command runs, so a bad value stops every command at once, before any work.

An unset or empty variable means "use the default". The tool's own
variables are checked up front; `WORLD_SIZE` and `RANK` (set by ``accelerate
launch``) only by `train`, which reads them, so another tool's value cannot
stop `report`; API keys are read as plain text where a backend needs them
(`text`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path

from brie_bench.errors import InputError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


def _raw(name: str) -> str | None:
    """The variable's value with surrounding blanks removed; None when unset or empty."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _refuse(name: str, value: str, wanted: str) -> InputError:
    shown = value if len(value) <= 40 else value[:40] + "..."
    return InputError(f"must be {wanted}, not {shown!r} (unset it to use the default)", field=name)


def text(name: str) -> str | None:
    """The variable as text, or None when unset or empty (API keys, scripted key lists)."""
    value = os.environ.get(name)
    return value if value else None


def positive_float(name: str, default: float, *, allow_zero: bool = False) -> float:
    """A finite number above zero (at or above zero with `allow_zero`): nan, inf, -1 and 'abc' are refused."""
    value = _raw(name)
    if value is None:
        return default
    wanted = "a finite number of at least 0" if allow_zero else "a finite number above 0"
    try:
        number = float(value)
    except ValueError:
        raise _refuse(name, value, wanted) from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise _refuse(name, value, wanted)
    return number


def integer(name: str, default: int, *, minimum: int = 0) -> int:
    """A whole number of at least `minimum` ('2', not '2.0' or '1e3')."""
    value = _raw(name)
    if value is None:
        return default
    wanted = f"a whole number of at least {minimum}"
    if _INTEGER.fullmatch(value) is None:
        raise _refuse(name, value, wanted)
    number = int(value)
    if number < minimum:
        raise _refuse(name, value, wanted)
    return number


def flag(name: str, default: bool) -> bool:
    """1/true/yes/on or 0/false/no/off (any case); anything else is refused rather than guessed."""
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _refuse(name, value, "one of 1, true, yes, on, 0, false, no, off")


def path(name: str) -> Path | None:
    """A file or folder path (``~`` expanded), or None when unset; a NUL byte cannot name a file."""
    value = os.environ.get(name)
    if not value:
        return None
    if "\x00" in value:
        raise _refuse(name, value, "a path")
    return Path(value).expanduser()


# -- the tool's variables, each read in one place -----------------------------------------------

DEFAULT_LEASE_S = 60.0


def db_path() -> str | None:
    """`BRIE_BENCH_DB`: the database when no --db is given: a path, or a URL (kept as it is: as a path,
    ``postgresql://host/db`` would lose a slash)."""
    value = os.environ.get("BRIE_BENCH_DB")
    if value and "://" in value and "\x00" not in value:
        return value
    found = path("BRIE_BENCH_DB")
    return None if found is None else str(found)


def cache_dir() -> Path | None:
    """`BRIE_BENCH_CACHE`: where tiny models (and converted GGUF files) are kept."""
    return path("BRIE_BENCH_CACHE")


def lease_s() -> float:
    """`BRIE_BENCH_LEASE_S`: how long a unit lease lasts without renewal (kept within 0.5 s .. 1 day)."""
    return min(max(positive_float("BRIE_BENCH_LEASE_S", DEFAULT_LEASE_S), 0.5), 86_400.0)


def retry_base_s() -> float:
    """`BRIE_BENCH_RETRY_BASE_S`: the first retry's backoff (0: retry at once)."""
    return positive_float("BRIE_BENCH_RETRY_BASE_S", 1.0, allow_zero=True)


def retry_cap_s() -> float:
    """`BRIE_BENCH_RETRY_CAP_S`: the longest backoff between retries."""
    return positive_float("BRIE_BENCH_RETRY_CAP_S", 60.0, allow_zero=True)


def world_size() -> int:
    """`WORLD_SIZE` (set by ``accelerate launch``): data-parallel training processes."""
    return integer("WORLD_SIZE", 1, minimum=1)


def rank() -> int:
    """`RANK` (set by ``accelerate launch``): this training process's index; 0 prints."""
    return integer("RANK", 0, minimum=0)


#: The variables checked before any command runs: name -> its reader.
VARIABLES: dict[str, Callable[[], object]] = {
    "BRIE_BENCH_DB": db_path,
    "BRIE_BENCH_CACHE": cache_dir,
    "BRIE_BENCH_LEASE_S": lease_s,
    "BRIE_BENCH_RETRY_BASE_S": retry_base_s,
    "BRIE_BENCH_RETRY_CAP_S": retry_cap_s,
}


def check_all() -> None:
    """Read every variable in `VARIABLES`; the first bad one raises `InputError` naming it."""
    for reader in VARIABLES.values():
        reader()
