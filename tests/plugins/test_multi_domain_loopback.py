"""The multi-domain suite end to end: the real suites/multi_domain.yaml against loopback provider servers.

The suite file is loaded as shipped; only where the models live changes, as a user would
change it: the contenders move to the `openai` backend pointed at an OpenAI-compatible
server (what serving the base model and the adapter from vLLM looks like), and each
judge's `backend_options.base_url` points its own SDK (Anthropic, OpenAI, Gemini) at the
loopback. Transient faults are injected; every call must succeed in the end.
"""

from __future__ import annotations

import io
import random
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from brie_bench.cli import cli
from brie_bench.plugin_manager import load_plugins
from brie_bench.run import execute_run
from brie_bench.suite import load_suite
from hostile.kit import contender, llm_judge, loopback_suite, model_calls, query, loopback, summary, \
    write_suite

REPO = Path(__file__).parents[2]
MULTI = REPO / "suites" / "multi_domain.yaml"
JUDGE_PROTOCOL = {"claude": "anthropic", "gpt4o": "openai", "gemini": "gemini"}
FAKE_KEYS = {"OPENAI_API_KEY": "sk-fake-openai", "ANTHROPIC_API_KEY": "sk-ant-fake",
             "GEMINI_API_KEY": "fake-gemini-key"}


@pytest.fixture(autouse=True)
def keys_and_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BRIE_BENCH_RETRY_BASE_S", "0.01")
    monkeypatch.setenv("BRIE_BENCH_RETRY_CAP_S", "0.05")


def served_from_loopback(srv: Any, tmp_path: Path, verdict: str) -> Path:
    """suites/multi_domain.yaml with every model on the loopback, written next to a copy of its prompts."""
    data = yaml.safe_load(MULTI.read_text(encoding="utf-8"))
    for name, spec in data["contenders"].items():
        model = "brie-v2-3b" if spec.get("options", {}).get("adapter") else "qwen2.5-3b-instruct"
        data["contenders"][name] = contender(srv, model)
    for name, spec in data["judges"].items():
        assert spec["backend"] == JUDGE_PROTOCOL[name]
        spec.setdefault("backend_options", {})["base_url"] = srv.url(spec["backend"])
        # Off the provider's own host the default key is refused unless the suite names it.
        spec["backend_options"]["api_key_env"] = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY",
                                                  "gemini": "GEMINI_API_KEY"}[spec["backend"]]
        spec["options"]["verdict"] = verdict
        spec["limits"] = {"max_concurrency": 8}  # the shipped requests_per_minute would pace this to 50 s
    shutil.copytree(MULTI.parent / "prompts", tmp_path / "prompts")
    return write_suite(tmp_path / "multi_domain.yaml", data)


def run(path: Path, db: Path, **kwargs: Any) -> tuple[int, str]:
    out = io.StringIO()
    code = execute_run(load_suite(path), load_plugins(None), db=str(db),
                       console=Console(file=out, width=400, color_system=None), **kwargs)
    return code, out.getvalue()


@pytest.mark.parametrize("verdict", ["text", "json"])
def test_multi_domain_runs_against_three_provider_protocols(tmp_path: Path, verdict: str) -> None:
    rng = random.Random(3)
    transient = ["rate_limit:0", "server", "overloaded", "reset", "truncated"]
    script = [rng.choice(transient) if rng.random() < 0.15 else "slow:0" for _ in range(150)]
    with loopback(faults=script, max_lifetime_s=120) as srv:
        path = served_from_loopback(srv, tmp_path, verdict)
        db = tmp_path / "multi.db"
        code, out = run(path, db)
        counts = summary(out)
        assert code == 0, out
        judgments = query(db, "SELECT * FROM judgments")
        errors = query(db, "SELECT * FROM errors")
        # All 42 pairs, each judged by all three judges, every verdict valid.
        assert len(query(db, "SELECT * FROM generations")) == 84 and counts["gen_new"] == 84
        assert Counter(j["judge"] for j in judgments) == {"claude": 42, "gpt4o": 42, "gemini": 42}
        assert all(j["verdict"] in ("A", "B", "tie") for j in judgments), \
            [j["invalid_reason"] for j in judgments if j["verdict"] == "invalid"][:3]
        assert len({(j["section"], j["prompt_id"]) for j in judgments}) == 42
        # The judges really spoke three wire protocols, with their own models.
        paths = Counter(r.path.split("/models/")[0] for r in srv.requests)
        assert paths["/v1/messages"] >= 42 and paths["/v1beta"] >= 42 and paths["/v1/chat/completions"] >= 84 + 42
        assert {j["judge_model"] for j in judgments} == {"claude-3-5-sonnet-20241022", "gpt-4o",
                                                         "gemini-2.5-flash-lite"}
        # Every injected fault was a retried attempt, none final, none a verdict.
        injected = sum(1 for s in script if s != "slow:0")
        listing = "\n".join(f'{e["name"]} {e["kind"]} {e["unit_key"][:8]} {e["attempt"]} {e["message"][:90]}'
                            for e in errors)
        assert len(errors) == injected == counts["retries"] > 0, listing
        assert all(e["transient"] and not e["final"] for e in errors)
        assert counts["calls"] == len(model_calls(srv)) == 84 + 126 + injected
        if verdict == "json":
            assert all(j["scores"] for j in judgments)  # structured verdicts keep their scores
        # The candidate (marked "[brie]" by the fake model) wins every comparison, whichever label it got.
        assert {j["winner"] for j in judgments} == {"brie"}
        assert Counter(j["label_a"] for j in judgments)["brie"] not in (0, 126)


def test_dry_run_prints_call_counts_and_cost_per_judge() -> None:
    result = CliRunner().invoke(cli, ["--db", "/nonexistent-folder/x.db", "run", str(MULTI), "--dry-run"],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "generation calls: 84 (0 already stored)" in flat
    assert "judge calls: 126 (0 already stored)" in flat
    assert "claude: 42, gemini: 42, gpt4o: 42" in flat
    estimate = flat.split("estimated cost of what is left:")[1]
    for judge in ("claude", "gpt4o", "gemini"):
        assert f"{judge}: $" in estimate, estimate  # a price for each judge's model, not "unknown"


def test_dry_run_of_a_partly_stored_run_counts_only_what_is_left(tmp_path: Path) -> None:
    with loopback(max_lifetime_s=60) as srv:
        path = served_from_loopback(srv, tmp_path, "text")
        db = tmp_path / "multi.db"
        assert run(path, db, limit=1)[0] == 0  # the first prompt of each of the 10 sections
        requests = len(srv.requests)
        code, out = run(path, db, dry_run=True)
        assert code == 0 and len(srv.requests) == requests  # a dry run calls nothing
        flat = " ".join(out.split())
        assert "generation calls: 84 (20 already stored)" in flat
        assert "judge calls: 126 (30 already stored)" in flat


def test_twenty_call_judging_phase_with_429s(tmp_path: Path) -> None:
    with loopback(max_lifetime_s=60) as srv:
        # Generations first, with no judge: the judging run then reuses them and makes only judge calls.
        data = loopback_suite(srv, prompts=20, judges={})
        assert run(write_suite(tmp_path / "gen.yaml", data), tmp_path / "j.db")[0] == 0
        assert len(model_calls(srv)) == 40
        srv.clear_log()
        data["judges"] = {"judge": llm_judge(srv, limits={"max_concurrency": 4})}
        rate_limits = ["rate_limit:0", "slow:0", "rate_limit:0", "rate_limit:0", "slow:0", "slow:0",
                       "rate_limit:0.05", "slow:0", "rate_limit:0", "rate_limit:0"]
        srv.add_faults(*rate_limits)
        code, out = run(write_suite(tmp_path / "judge.yaml", data), tmp_path / "j.db")
        assert code == 0, out
        counts = summary(out)
        n429 = rate_limits.count("rate_limit:0") + rate_limits.count("rate_limit:0.05")
        assert counts["gen_new"] == 0 and counts["gen_cached"] == 40
        assert counts["judg_new"] == 20 and counts["retries"] == n429 and counts["calls"] == 20 + n429
        assert len(model_calls(srv)) == 20 + n429
        run_id = query(tmp_path / "j.db", "SELECT id FROM runs WHERE suite_name='loopback' "
                                          "ORDER BY created_at DESC LIMIT 1")[0]["id"]
        errors = query(tmp_path / "j.db", "SELECT * FROM errors WHERE run_id=?", run_id)
        judgments = query(tmp_path / "j.db", "SELECT * FROM judgments WHERE run_id=?", run_id)
        # The retried calls are in the error log, and none of them is a verdict.
        assert len(errors) == n429
        assert all(e["kind"] == "rate_limit" and e["transient"] and not e["final"] and e["unit_kind"] == "judgment"
                   for e in errors)
        assert len(judgments) == 20 and len({j["unit_key"] for j in judgments}) == 20
        assert {e["unit_key"] for e in errors} <= {j["unit_key"] for j in judgments}
        assert all(j["verdict"] in ("A", "B", "tie") and "rate limit" not in j["raw"].lower() for j in judgments)
        # The summary table shows them per judge: the "retried" column, not wins or losses.
        row = next(line.split() for line in out.splitlines() if line.split()[:2] and line.split()[0] == "judge"
                   and line.split()[1].isdigit())  # judge, W, L, T, inv, win%, fail, retried
        wins, losses, ties, invalid, _, failed, retried = row[1:8]
        assert int(wins) + int(losses) + int(ties) == 20 and invalid == "0"
        assert (int(retried), int(failed)) == (n429, 0)
