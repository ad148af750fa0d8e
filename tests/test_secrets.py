"""No API key ever lands in the database, a report, an export or the logs.

Fake keys are set in the environment; the whole flow runs through the CLI (run with a
failing judge, dry run, runs, report in every format, export), the providers' SDKs really
send the keys to the loopback servers, and then every byte written and printed is searched
for them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hostile.kit import llm_judge, loopback, loopback_suite, query, write_suite

KEYS = {
    "OPENAI_API_KEY": "sk-proj-FAKEopenaiKEY-4d2c9a77b1e04f0f8a1b",
    "ANTHROPIC_API_KEY": "sk-ant-api03-FAKEanthropicKEY-91c3e5f7a2",
    "GEMINI_API_KEY": "AIzaFAKEgeminiKEY-6b8d0f2a4c6e8a0b2d4f",
    "WRONG_KEY": "sk-proj-FAKEwrongKEY-0e1f2a3b4c5d6e7f8091",
}


def brie_bench(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="160", BRIE_BENCH_RETRY_BASE_S="0.01", **KEYS)
    return subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(tmp / "secrets.db"), *args], cwd=tmp,
                          capture_output=True, timeout=180, env=env)


def test_keys_never_reach_the_store_reports_exports_or_logs(tmp_path: Path) -> None:
    with loopback(max_lifetime_s=180) as open_srv, loopback(api_key="the-right-key", max_lifetime_s=180) as locked:
        data = loopback_suite(open_srv, prompts=4, both=True)
        for spec in data["contenders"].values():
            spec["options"].pop("require_key")  # contenders send OPENAI_API_KEY, as with a hosted API
        data["judges"] = {
            "claude": llm_judge(open_srv, "anthropic", model="claude-judge"),
            "gpt": llm_judge(open_srv, "openai", model="gpt-judge", backend_options={"require_key": True}),
            "gemini": llm_judge(open_srv, "gemini", model="gemini-judge"),
            # The error path: this server wants another key, so every call fails with 401.
            "locked": llm_judge(locked, "openai", model="gpt-judge",
                                backend_options={"require_key": True, "api_key_env": "WRONG_KEY"}),
        }
        suite = write_suite(tmp_path / "suite.yaml", data)
        logs = [brie_bench(tmp_path, "run", str(suite), "--dry-run"),
                brie_bench(tmp_path, "run", str(suite)),
                brie_bench(tmp_path, "runs")]
        sent = [r.headers for r in open_srv.requests + locked.requests]

    run = logs[1]
    assert run.returncode == 1, (run.stdout + run.stderr).decode(errors="replace")  # the locked judge failed
    errors = query(tmp_path / "secrets.db", "SELECT * FROM errors")
    assert errors and {e["kind"] for e in errors} == {"auth"} and {e["name"] for e in errors} == {"locked"}
    assert len(query(tmp_path / "secrets.db", "SELECT * FROM judgments")) == 3 * 4 * 2  # three working judges, four prompts in both orders
    # The keys really were used: each SDK sent its own to the servers.
    headers = " ".join(" ".join(h.values()) for h in sent)
    for name, key in KEYS.items():
        assert key in headers, f"{name} was never sent, so this test would prove nothing about it"

    reports = tmp_path / "reports"
    reports.mkdir()
    logs += [brie_bench(tmp_path, "report"),
             brie_bench(tmp_path, "report", f"--html={reports / 'r.html'}", f"--markdown={reports / 'r.md'}",
                        f"--json={reports / 'r.json'}"),
             brie_bench(tmp_path, "export", "--jsonl", "-o", str(reports / "e.jsonl")),
             brie_bench(tmp_path, "export", "--csv", "-o", str(reports / "e.csv"))]
    for result in logs[2:]:
        assert result.returncode == 0, (result.args, result.stderr.decode(errors="replace"))
    assert {p.name for p in reports.iterdir()} == {"r.html", "r.md", "r.json", "e.jsonl", "e.csv"}

    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.startswith("secrets.db") for p in written)
    haystacks = {str(p): p.read_bytes() for p in written}
    for i, result in enumerate(logs):
        haystacks[f"stdout of command {i}"] = result.stdout
        haystacks[f"stderr of command {i}"] = result.stderr
    for name, key in KEYS.items():
        for needle in (key, key[-16:]):  # the whole key, or its tail as a masked echo would show it
            hits = [where for where, data in haystacks.items() if needle.encode() in data]
            assert hits == [], f"{name} found in {hits}"
