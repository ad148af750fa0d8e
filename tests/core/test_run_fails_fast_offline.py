"""`brie-bench run` stops in seconds when a contender's model can be neither loaded nor fetched.

The real command runs in a subprocess with fake keys, an empty Hugging Face cache in
tmp_path and no network: with HF_HUB_OFFLINE=1 (nothing is contacted), and once without it
(a DNS lookup that fails on this machine; skipped where huggingface.co resolves, so the test
never reaches the real network). Before this fix the same command retried the hub for
minutes and printed dozens of "Retrying in 8s" lines.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brie_bench.api import ModelSource as Source
from brie_bench.preflight import check_models, describe, missing_lines
from brie_bench.run import library_output_to

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "suites" / "multi_domain.yaml"
QWEN = "Qwen/Qwen2.5-3B-Instruct"
ADAPTER = "closestfriend/brie-v2-3b"
LIBRARY_LINES = ("Retrying", "thrown while requesting", "Traceback")


def _env(tmp_path: Path, offline: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TRANSFORMERS_", "BRIE_BENCH_", "HUGGINGFACE_"))}
    env.update({"HF_HOME": str(tmp_path / "hf"), "OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-test",
                "GEMINI_API_KEY": "sk-test", "COLUMNS": "200"})
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def _run(tmp_path: Path, offline: bool, *extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "brie_bench", "run", str(SUITE), "--limit", "1", "--db", str(tmp_path / "b.db"), *extra],
        env=_env(tmp_path, offline), capture_output=True, text=True, timeout=120, cwd=tmp_path)
    return proc, time.monotonic() - start


def _check_fails_fast(proc: subprocess.CompletedProcess[str], elapsed: float, tmp_path: Path, tried: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert elapsed < 20, f"took {elapsed:.1f}s"
    for line in LIBRARY_LINES:
        assert line not in out, out
    lines = [ln.strip() for ln in proc.stderr.splitlines()]
    baseline = [ln for ln in lines if ln.startswith("baseline:")]
    brie = [ln for ln in lines if ln.startswith("brie:")]
    assert len(baseline) == 1 and len(brie) == 1, out  # one line per contender
    assert QWEN in baseline[0] and f"hf download {QWEN}" in baseline[0] and tried in baseline[0]
    assert QWEN in brie[0] and ADAPTER in brie[0] and f"hf download {ADAPTER}" in brie[0]
    assert not (tmp_path / "b.db").exists()  # stopped before the database was created
    assert not (tmp_path / "hf" / "hub").exists() or not any((tmp_path / "hf" / "hub").iterdir())


def test_offline_run_with_empty_cache_fails_in_seconds(tmp_path: Path) -> None:
    proc, elapsed = _run(tmp_path, offline=True)
    _check_fails_fast(proc, elapsed, tmp_path, "HF_HUB_OFFLINE")


def test_run_without_dns_fails_in_seconds(tmp_path: Path) -> None:
    try:
        socket.getaddrinfo("huggingface.co", 443)
    except OSError:
        pass
    else:
        pytest.skip("huggingface.co resolves here: this test must not reach the real network")
    proc, elapsed = _run(tmp_path, offline=False)
    _check_fails_fast(proc, elapsed, tmp_path, "could not be resolved")


def test_dry_run_says_what_is_missing_and_exits_0(tmp_path: Path) -> None:
    proc, _ = _run(tmp_path, True, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"baseline: model {QWEN}: not cached, size unknown (offline)" in out
    assert f"brie: adapter {ADAPTER}: not cached, size unknown (offline)" in out


class _Backend:
    """What `check_models` reads of a backend: its `model_sources()`."""

    def __init__(self, *sources: Source) -> None:
        self.sources = list(sources)

    def model_sources(self) -> list[Source]:
        return self.sources


def _cache_config(hub: Path, repo: str, filename: str) -> None:
    """The Hugging Face cache layout: refs/main names a snapshot that holds the file."""
    folder = hub / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc123", encoding="utf-8")
    (folder / "snapshots" / "abc123").mkdir(parents=True)
    (folder / "snapshots" / "abc123" / filename).write_text("{}", encoding="utf-8")


def test_cached_built_in_and_local_models_pass_without_network(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    hub = tmp_path / "hub"
    _cache_config(hub, QWEN, "config.json")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    owners: dict[str, object] = {
        "baseline": _Backend(Source("model", QWEN, "hub")),
        "brie": _Backend(Source("model", QWEN, "hub"), Source("adapter", ADAPTER, "hub")),
        "tiny": _Backend(Source("model", "tiny:qwen2", "built-in")),
        "folder": _Backend(Source("model", str(tmp_path), "local")),
    }
    checks = check_models(owners)
    states = {(c.contender, c.source.ref): c.state for c in checks}
    assert states == {("baseline", QWEN): "cached", ("brie", QWEN): "cached", ("brie", ADAPTER): "missing",
                      ("tiny", "tiny:qwen2"): "built-in", ("folder", str(tmp_path)): "local"}
    lines = missing_lines(checks)
    assert len(lines) == 1 and lines[0].startswith(f"brie: adapter '{ADAPTER}'")  # the cached base is not named
    said = {describe(c) for c in checks}
    assert f"baseline: model {QWEN}: already in the Hugging Face cache" in said
    assert "tiny: model tiny:qwen2: built locally by Brie Bench" in said


def test_library_messages_go_to_the_log_not_the_terminal(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """huggingface_hub gives its logger its own stderr handler; during a run its retry lines reach only the log."""
    from huggingface_hub.utils import logging as hub_logging

    hub_root = logging.getLogger("huggingface_hub")
    handlers_before = list(hub_root.handlers)
    assert any(type(h) is logging.StreamHandler for h in handlers_before)  # the library's own terminal handler
    log = tmp_path / "run.log"
    retry = "Retrying in 8s [Retry 4/5]."
    with library_output_to(log):
        hub_logging.get_logger("huggingface_hub.utils._http").warning(retry)
    captured = capfd.readouterr()
    assert retry not in captured.err and retry not in captured.out
    assert retry in log.read_text(encoding="utf-8")
    assert hub_root.handlers == handlers_before  # put back after the run
