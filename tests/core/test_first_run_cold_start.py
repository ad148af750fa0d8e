"""The README's first command, as a new user meets it: an empty model cache, a fresh database.

Runs the real CLI in a subprocess, without the session's tiny-model fixtures
(which build the models up front and so hid the bug): on an empty cache the two
`hf` contenders used to build and load their models in two worker threads at
once, and transformers' lazy module raised "cannot import name
'GenerationConfig'" for one of them. The first run must exit 0, the second
must make zero model calls, and library noise (progress bars, FutureWarnings)
must not reach the run display. Done twice, each time with a fresh cache.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOISE = ("Loading weights", "Writing model shards", "FutureWarning", "it/s]", "Traceback")


def _run(cache: Path, db: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIE_BENCH_", "HF_"))}
    env.update(BRIE_BENCH_CACHE=str(cache), HF_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               COLUMNS="80", PYTHONWARNINGS="default")  # warnings on: they must still stay off the display
    return subprocess.run([sys.executable, "-m", "brie_bench", "run", "suites/smoke.yaml", "--db", str(db)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("attempt", [1, 2])
def test_smoke_suite_from_an_empty_cache(tmp_path: Path, attempt: int) -> None:
    cache, db, home = tmp_path / f"cache{attempt}", tmp_path / "brie-bench.db", tmp_path / "hf"
    assert not cache.exists()
    first = _run(cache, db, home)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert "generations: 12 new, 0 cached, 0 failed" in first.stdout, output
    assert "judgments: 9 new, 0 stored, 0 failed" in first.stdout, output
    for noise in NOISE:
        assert noise not in output, f"{noise!r} reached the terminal:\n{output}"
    second = _run(cache, db, home)
    assert second.returncode == 0, second.stdout + second.stderr
    assert re.search(r"model calls: 0\b", second.stdout), second.stdout
    assert "0 failed" in second.stdout
