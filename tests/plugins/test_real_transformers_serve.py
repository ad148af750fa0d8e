"""A real OpenAI-compatible server we did not write: `transformers serve`, on 127.0.0.1.

The loopback fakes speak the protocol as we understand it; this test checks it against
Hugging Face's own server. `brie_bench.local_server` starts `transformers serve` pinned
to the tiny random model under the name ``tiny-qwen2``. A suite whose candidate and text
judge go through the `openai` backend to it (the baseline is the same weights in-process,
through the `hf` backend) runs end to end through the CLI, started the way the README
starts the mini-Brie run. Checked: token usage as the server counted it, the stored
answers, the report, a rerun that calls nothing, and that the server goes away on its own:
when the run ends, and when the process that started it dies without cleaning up.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from brie_bench.cli import cli
from hostile.kit import query, summary

pytest.importorskip("fastapi", reason="transformers[serving] is in the dev extra")
pytest.importorskip("uvicorn", reason="transformers[serving] is in the dev extra")

PROMPTS = ["What is attention?", "Name three kinds of silence.", "Why do we keep promises?"]


def _suite(tmp_path: Path, base_url: str, model: str) -> Path:
    openai = {"base_url": base_url, "require_key": False}
    data = {
        "name": "transformers-serve",
        "seed": 5,
        "baseline": "baseline",
        "contenders": {
            "baseline": {"backend": "hf", "model": "tiny:qwen2"},
            "served": {"backend": "openai", "model": model, "options": openai},
        },
        "judges": {
            "served-judge": {"type": "llm", "backend": "openai", "model": model, "backend_options": openai,
                             "options": {"verdict": "text", "max_tokens": 12}},
        },
        "defaults": {"max_tokens": 12, "temperature": 0.7},
        "sections": [{"name": "questions", "prompts": PROMPTS, "orders": "both"}],
    }
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _cli(db: Path, cache: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--db", str(db), *args], env={"COLUMNS": "200", "BRIE_BENCH_CACHE": str(cache)})


def test_suite_through_transformers_serve_end_to_end(tmp_path: Path, tiny_cache: Path,
                                                     tiny_base_path: Path) -> None:
    from brie_bench.local_server import free_port, served_name

    port, model = free_port(), served_name("tiny:qwen2")
    assert model == "tiny-qwen2"
    path, db = _suite(tmp_path, f"http://127.0.0.1:{port}/v1", model), tmp_path / "serve.db"
    # As the README runs it: the launcher starts `transformers serve`, waits for the model, runs
    # the command against it, and stops the server when the command ends.
    first = subprocess.run([sys.executable, "-m", "brie_bench.local_server", "tiny:qwen2", "--port", str(port),
                            "--", sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(path)],
                           capture_output=True, text=True, timeout=900,
                           env=dict(os.environ, BRIE_BENCH_CACHE=str(tiny_cache), COLUMNS="200"))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert f"as model 'tiny-qwen2' at http://127.0.0.1:{port}/v1" in first.stderr
    counts = summary(first.stdout)
    assert counts["gen_new"] == 6 and counts["judg_new"] == 6 and counts["judg_failed"] == 0
    with pytest.raises(OSError):  # the server stopped by itself when the run ended
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

    # Stored answers: the served model's, with the server's own token counts.
    served_gens = query(db, "SELECT * FROM generations WHERE backend = 'openai'")
    assert len(served_gens) == 3 and {g["model"] for g in served_gens} == {model}
    for g in served_gens:
        assert 0 < g["output_tokens"] <= 12
        # The chat template wraps the prompt: the server counted more tokens than the prompt has words.
        assert g["input_tokens"] > len(json.loads(g["messages"])[-1]["content"].split())
        assert g["finish_reason"] in ("stop", "length") and isinstance(g["text"], str)
    assert any(g["text"].strip() for g in served_gens)  # a random model still writes something

    # The text judge went through the same server; a random model rarely writes "Winner: A",
    # so most verdicts are invalid, and invalid is counted, never a tie or a win.
    judgments = query(db, "SELECT * FROM judgments")
    assert len(judgments) == 6 and {j["judge_model"] for j in judgments} == {model}
    assert all(j["input_tokens"] > 100 and 0 < j["output_tokens"] <= 12 for j in judgments)
    assert all((j["verdict"] == "invalid") == (j["winner"] is None) for j in judgments)

    # The report carries the judge, its invalid count and the server's token counts.
    report = _cli(db, tiny_cache, "report", "--json")
    assert report.exit_code == 0, report.output
    data = json.loads(report.output)
    (head,) = data["judges"]
    assert head["judge"] == "served-judge" and head["n"] == 3
    assert head["invalid"] == sum(1 for j in _comparisons(judgments) if j == "invalid")
    cost = {c["name"]: c for c in data["cost"]["judges"]}
    assert cost["served-judge"]["input_tokens"] == sum(j["input_tokens"] for j in judgments)
    contenders = {c["name"]: c for c in data["cost"]["contenders"]}
    assert contenders["served"]["output_tokens"] == sum(g["output_tokens"] for g in served_gens)

    # A rerun finds everything stored: it calls nothing, so it does not even need the server.
    second = _cli(db, tiny_cache, "run", str(path))
    assert second.exit_code == 0, second.output
    assert summary(second.output)["calls"] == 0


def _comparisons(judgments: list[dict[str, Any]]) -> list[str]:
    """Under orders: both a comparison is invalid when either of its two judgments is."""
    by_prompt: dict[str, list[str]] = {}
    for j in judgments:
        by_prompt.setdefault(j["prompt_id"], []).append(j["verdict"])
    return ["invalid" if "invalid" in v else "valid" for v in by_prompt.values()]


def test_server_dies_with_the_process_that_started_it(tmp_path: Path, tiny_cache: Path,
                                                      tiny_base_path: Path) -> None:
    """The owner is killed without any cleanup; the server must not outlive it."""
    code = ("import os, sys\n"
            "from brie_bench.local_server import LocalServer\n"
            f"srv = LocalServer('tiny:qwen2', cache_dir={str(tiny_cache)!r}, lifetime_s=600).start()\n"
            "print(srv.process.pid, flush=True)\n"
            "os._exit(0)\n")
    owner = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, BRIE_BENCH_CACHE=str(tiny_cache)))
    assert owner.returncode == 0, owner.stderr
    pid = int(owner.stdout.split()[0])
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = _alive(pid)
    if alive:  # never leave it behind, even when the test fails
        os.kill(pid, 9)
    assert not alive, "transformers serve outlived the process that started it"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) counts as gone
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
