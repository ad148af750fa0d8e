"""Before any generation: is every local contender's model on this machine, or can it be fetched?

Why: a run whose base model is neither on disk nor downloadable used to start anyway, and
every generation then failed after transformers had retried the hub for minutes, printing a
wall of "Retrying in 8s" lines. This check answers in seconds instead, with one
line per contender that names the model, what was tried and what to do.

What counts as available, per model or adapter reference of a backend (`model_sources`):
- a model Brie Bench builds itself (``tiny:*``, ``smollm2:135m-instruct``): always;
- a local folder: always (a missing folder is already an input error in `check_ready`);
- a hub id: when its config is in the Hugging Face cache, or when the hub answers ONE quick
  probe (a DNS lookup, then one metadata request with a short timeout and no retries). With
  ``HF_HUB_OFFLINE=1`` nothing touches the network.

The probe's answer also gives `--dry-run` the size of each download (the repository's files
as listed by the hub).
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from brie_bench.errors import InputError
from brie_bench.records import ModelSource

#: Seconds for the DNS lookup and for the one metadata request.
PROBE_TIMEOUT_S = 4.0

State = Literal["built-in", "local", "cached", "downloadable", "missing"]
#: Weight formats transformers never loads when a safetensors file is present.
_OTHER_WEIGHTS = (".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt", ".gguf", ".onnx", ".ot", ".tflite")


@dataclass(frozen=True)
class ModelCheck:
    """The answer for one `ModelSource` of one contender."""

    contender: str
    source: ModelSource
    state: State
    size_bytes: int | None = None  # for "downloadable": what the download weighs, when the hub said
    reason: str = ""               # for "missing": why (offline, DNS, gated, not found...)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: the hub must not be contacted at all."""
    return any(os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _endpoint_host() -> str:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return urlsplit(endpoint).hostname or "huggingface.co"


def _resolves(host: str, timeout: float) -> str | None:
    """None when `host` resolves within `timeout`; else why not. getaddrinfo has no timeout of its own."""
    outcome: list[str | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, 443)
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host} could not be resolved ({exc.strerror or exc})")

    thread = threading.Thread(target=lookup, daemon=True, name="brie-bench-dns-probe")
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"{host} did not resolve within {timeout:g}s"


def _in_cache(source: ModelSource) -> bool:
    """The hub id's config file is in the Hugging Face cache (the same cache transformers reads)."""
    from huggingface_hub import try_to_load_from_cache

    filename = "adapter_config.json" if source.what == "adapter" else "config.json"
    try:
        found = try_to_load_from_cache(source.ref, filename, revision=source.revision)
    except ValueError:  # HFValidationError: not a valid repository id
        return False
    return isinstance(found, str)


def _download_size(info: Any) -> int | None:
    """Bytes transformers would fetch: every file, but only one weight format when safetensors exist."""
    files = [(s.rfilename, s.size) for s in (getattr(info, "siblings", None) or [])]
    if not files or any(size is None for _, size in files):
        return None
    safetensors = any(name.endswith(".safetensors") for name, _ in files)
    return sum(int(size) for name, size in files
               if not (safetensors and name.endswith(_OTHER_WEIGHTS)))


def _probe(source: ModelSource) -> tuple[int | None, str]:
    """One metadata request, no retries: (size, "") when the hub has it, (None, why) when not."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().model_info(source.ref, revision=source.revision, files_metadata=True,
                                  timeout=PROBE_TIMEOUT_S)
    except GatedRepoError:
        return None, "the repository is gated: accept its terms on the hub and log in with `hf auth login`"
    except RepositoryNotFoundError:
        return None, "the hub has no such repository (or it is private: log in with `hf auth login`)"
    except RevisionNotFoundError:
        return None, f"the hub has no revision {source.revision!r}"
    except ValueError as exc:  # HFValidationError
        return None, f"not a local folder and not a hub id ({exc})"
    except Exception as exc:  # noqa: BLE001 - any network failure: one line, never a traceback
        return None, f"the hub did not answer ({type(exc).__name__})"
    return _download_size(info), ""


def sources_of(backend: object) -> list[ModelSource]:
    """The models a backend loads itself, from its optional `model_sources()` (the `hf` backend has one)."""
    method = getattr(backend, "model_sources", None)
    if not callable(method):
        return []
    found = method()
    return [s for s in found if isinstance(s, ModelSource)]


def check_models(contenders: dict[str, object], *, network: bool = True) -> list[ModelCheck]:
    """Where each contender's models come from; `network=False` never contacts the hub.

    The hub is probed at most once per uncached id, after one DNS lookup; with HF_HUB_OFFLINE
    or when the lookup fails, every uncached id is "missing" at once.
    """
    checks: list[ModelCheck] = []
    pending: list[tuple[str, ModelSource]] = []
    for name, backend in contenders.items():
        for source in sources_of(backend):
            if source.kind != "hub":
                checks.append(ModelCheck(name, source, source.kind))
            elif _in_cache(source):
                checks.append(ModelCheck(name, source, "cached"))
            else:
                pending.append((name, source))
    if not pending:
        return checks
    why: str | None
    if hub_offline():
        why = "HF_HUB_OFFLINE is set, so the hub was not contacted"
    elif not network:
        why = "the hub was not contacted"
    else:
        why = _resolves(_endpoint_host(), PROBE_TIMEOUT_S)
    probed: dict[tuple[str, str | None], tuple[int | None, str]] = {}
    for name, source in pending:
        if why is not None:
            checks.append(ModelCheck(name, source, "missing", reason=why))
            continue
        key = (source.ref, source.revision)
        if key not in probed:
            probed[key] = _probe(source)
        size, reason = probed[key]
        checks.append(ModelCheck(name, source, "missing" if reason else "downloadable", size, reason))
    return checks


def stay_offline_if_unreachable(checks: list[ModelCheck]) -> bool:
    """Every hub model is cached: when the hub cannot be reached, switch the process to offline mode.

    Why: transformers asks the hub about a cached model too, and without network it retries
    each request for a minute before it falls back to the cache. One DNS lookup decides instead.
    Returns True when offline mode was switched on.
    """
    if hub_offline() or not any(c.state == "cached" for c in checks):
        return False
    if _resolves(_endpoint_host(), PROBE_TIMEOUT_S) is None:
        return False
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    return True


def _download_hint(sources: list[ModelSource]) -> str:
    commands = " and ".join(f"`hf download {s.ref}" + (f" --revision {s.revision}" if s.revision else "") + "`"
                            for s in sources)
    folders = "local folders" if len(sources) > 1 else "a local folder"
    return f"download {'them' if len(sources) > 1 else 'it'} first with {commands}, or point the suite at {folders}"


def missing_lines(checks: list[ModelCheck]) -> list[str]:
    """One line per contender with a missing model: the ids, what was tried, what to do."""
    lines: list[str] = []
    by_contender: dict[str, list[ModelCheck]] = {}
    for check in checks:
        if check.state == "missing":
            by_contender.setdefault(check.contender, []).append(check)
    for name, missing in by_contender.items():
        sources = [c.source for c in missing]
        things = " and ".join(f"{s.what} {s.ref!r}" for s in sources)
        reasons = "; ".join(dict.fromkeys(c.reason for c in missing))
        verb = "is not a local folder" if len(sources) == 1 else "are not local folders"
        lines.append(f"{name}: {things} {verb} and not in the Hugging Face cache, and {reasons}; "
                     f"{_download_hint(sources)}")
    return lines


def require_models(contenders: dict[str, object]) -> list[ModelCheck]:
    """Raise one InputError (exit 2) naming every contender whose model can be neither loaded nor fetched."""
    checks = check_models(contenders)
    lines = missing_lines(checks)
    if len(lines) == 1:
        raise InputError(f"model not available: {lines[0]}")
    if lines:
        raise InputError(f"{len(lines)} contenders' models are not available:\n  " + "\n  ".join(lines))
    return checks


def format_size(n: int) -> str:
    """1234567890 -> "1.2 GB" (decimal units, as the hub shows them)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def describe(check: ModelCheck) -> str:
    """One dry-run line: "baseline: model 'Qwen/...': not cached, 6.2 GB to download"."""
    s = check.source
    head = f"{check.contender}: {s.what} {s.ref}: "
    if check.state == "built-in":
        return head + "built locally by Brie Bench"
    if check.state == "local":
        return head + "local folder"
    if check.state == "cached":
        return head + "already in the Hugging Face cache"
    if check.state == "downloadable":
        size = format_size(check.size_bytes) if check.size_bytes is not None else "size unknown"
        return head + f"not cached, {size} to download on the first run"
    offline = "offline" if hub_offline() or "resolve" in check.reason or "not contacted" in check.reason else ""
    return head + f"not cached, size unknown ({offline or check.reason}); the run would stop before generating"
