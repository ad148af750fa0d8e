"""Instantiate the plugins a suite names: one backend per contender, one judge (and its backend) per judge.

Instantiation must be cheap (no model loading, no network): backends load
lazily on their first call, so `validate` and `--dry-run` stay instant.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

from brie_bench import __version__
from brie_bench.api import BackendContext, BatchBackend, Judge, JudgeContext, Limits, ModelBackend
from brie_bench.errors import InputError, MissingKeyError
from brie_bench.plugin_manager import Registry
from brie_bench.suite import Suite, check_plugins

VERSIONED_PACKAGES = ("torch", "transformers", "peft", "trl", "openai", "anthropic", "google-genai",
                      "numpy", "scipy", "pydantic", "pluggy")


@dataclass
class Runtime:
    contenders: dict[str, ModelBackend]
    judges: dict[str, Judge]
    limits: dict[str, Limits] = field(default_factory=dict)  # per contender or judge name
    batch: dict[str, float] = field(default_factory=dict)     # judge name -> poll interval, for batch judges

    def judge_model(self, name: str) -> str | None:
        backend = self.judges[name].backend
        return backend.model if backend else None

    def backends(self) -> list[ModelBackend]:
        """Every backend of the run: contenders first, then judges' backends."""
        out = list(self.contenders.values())
        out.extend(j.backend for j in self.judges.values() if j.backend is not None)
        return out

    def problems(self) -> list[InputError]:
        """Every missing key or other prerequisite, from every backend (not just the first)."""
        found: list[InputError] = []
        for backend in self.backends():
            try:
                backend.check_ready()
            except InputError as exc:
                found.append(exc)
        return found

    def check_ready(self) -> None:
        """Fail before any call (and any model load) when keys or other prerequisites are missing.

        Names all of them at once, so a user fixes their environment in one go.
        """
        found = self.problems()
        if len(found) == 1:
            raise found[0]
        if found:
            keys = all(isinstance(e, MissingKeyError) for e in found)
            what = "API keys are missing" if keys else "problems found"
            raise (MissingKeyError if keys else InputError)(
                f"{len(found)} {what}: " + "; ".join(str(e) for e in found))

    def prepare(self) -> None:
        """Let every backend import its heavy libraries here, in the calling (main) thread.

        Worker threads start only after this: transformers' lazy module is not safe to
        import from two threads at once, and two local contenders load in two threads.
        """
        seen: set[int] = set()
        for backend in self.backends():
            if id(backend) not in seen:
                seen.add(id(backend))
                try:
                    backend.prepare()
                except InputError:
                    raise
                except Exception:  # noqa: BLE001 - the first call fails the same way, recorded per unit
                    continue

    async def aclose(self) -> None:
        for judge in self.judges.values():
            await judge.aclose()
            if judge.backend is not None:
                await judge.backend.aclose()
        for backend in self.contenders.values():
            await backend.aclose()


def _limits(cls: type, override: Limits | None) -> Limits:
    base: Limits = getattr(cls, "default_limits", None) or Limits()
    if override is None:
        return base
    return base.model_copy(update=override.model_dump(exclude_unset=True))


def build_runtime(suite: Suite, registry: Registry, *, cache_dir: str | None = None,
                  seed: int | None = None) -> Runtime:
    check_plugins(suite, registry)
    spec = suite.spec
    base_dir = str(Path(suite.path).resolve().parent)
    contenders: dict[str, ModelBackend] = {}
    limits: dict[str, Limits] = {}
    for name, c in spec.contenders.items():
        cls = registry.backends[c.backend]
        try:
            contenders[name] = cls(c.model, cls.Options.model_validate(c.options),
                                   BackendContext("contender", name, cache_dir, base_dir))
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's own failure, reported by name
            raise suite.error(f"backend {c.backend!r} could not be set up: {exc}", ("contenders", name)) from None
        limits[name] = _limits(cls, c.limits)
    judges: dict[str, Judge] = {}
    for name, j in spec.judges.items():
        judge_cls = registry.judges[j.type]
        backend = None
        if j.backend is not None:
            bcls = registry.backends[j.backend]
            try:  # a plugin's own failure, reported by name, as for contenders
                backend = bcls(j.model or "", bcls.Options.model_validate(j.backend_options),
                               BackendContext("judge", name, cache_dir, base_dir))
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise suite.error(f"backend {j.backend!r} could not be set up: {exc}", ("judges", name)) from None
            limits[name] = _limits(bcls, j.limits)
        else:
            limits[name] = _limits(judge_cls, j.limits) if judge_cls.default_limits else (
                j.limits or Limits(max_concurrency=1))
        if not judge_cls.concurrent:
            limits[name] = limits[name].model_copy(update={"max_concurrency": 1})
        try:
            judges[name] = judge_cls(judge_cls.Options.model_validate(j.options), backend,
                                     JudgeContext(name=name, seed=spec.seed if seed is None else seed, base_dir=base_dir))
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise suite.error(f"judge {j.type!r} could not be set up: {exc}", ("judges", name)) from None
    batch: dict[str, float] = {}
    for name, j in spec.judges.items():
        if not j.batch:
            continue
        judge = judges[name]
        if type(judge).batch_request is Judge.batch_request or judge.backend is None:
            raise suite.error(f"judge type {j.type!r} cannot judge in batches", ("judges", name, "batch"))
        if not isinstance(judge.backend, BatchBackend):
            raise suite.error(f"backend {j.backend!r} has no batch API (a BatchBackend implements submit_batch "
                              f"and poll_batch)", ("judges", name, "batch"))
        batch[name] = float(j.batch_poll_s)
    return Runtime(contenders, judges, limits, batch)


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"brie_bench": __version__, "python": platform.python_version()}
    for pkg in VERSIONED_PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
