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
        # Off the provider's own host a key is sent only when the suite names its variable.
        for spec in data["contenders"].values():
            spec["options"].pop("require_key")
            spec["options"]["api_key_env"] = "OPENAI_API_KEY"  # contenders send a key, as with a hosted API
        data["judges"] = {
            "claude": llm_judge(open_srv, "anthropic", model="claude-judge",
                                backend_options={"require_key": True, "api_key_env": "ANTHROPIC_API_KEY"}),
            "gpt": llm_judge(open_srv, "openai", model="gpt-judge",
                             backend_options={"require_key": True, "api_key_env": "OPENAI_API_KEY"}),
            "gemini": llm_judge(open_srv, "gemini", model="gemini-judge",
                                backend_options={"require_key": True, "api_key_env": "GEMINI_API_KEY"}),
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
    # three working judges, four prompts in both orders
    assert len(query(tmp_path / "secrets.db", "SELECT * FROM judgments")) == 3 * 4 * 2
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


# -- secrets nested in options are refused like a top-level key field ----------

NESTED_KEY = "sk-proj-NESTEDsecretKEY-7a9c1e3b5d"
NESTED = [  # (kind, options field, backend, options, field path the error must name)
    ("contenders", "options", "openai", {"extra_body": {"api_key": NESTED_KEY}}, "options.extra_body.api_key"),
    ("contenders", "options", "openai", {"extra_body": {"headers": {"Authorization": f"Bearer {NESTED_KEY}"}}},
     "options.extra_body.headers.Authorization"),
    ("contenders", "options", "openai", {"base_url": f"http://user:{NESTED_KEY}@127.0.0.1:9/v1"}, "options.base_url"),
    ("contenders", "options", "openai", {"base_url": f"http://{NESTED_KEY}@127.0.0.1:9/v1"}, "options.base_url"),
    ("contenders", "options", "openai", {"extra_body": {"metadata": {"note": NESTED_KEY}}},
     "options.extra_body.metadata.note"),
    ("contenders", "options", "openai", {"extra_body": {"tools": [{"x-api-key": "anything-at-all"}]}},
     "options.extra_body.tools[0].x-api-key"),
    ("judges", "backend_options", "anthropic", {"extra_body": {"auth_token": NESTED_KEY}},
     "backend_options.extra_body.auth_token"),
    ("judges", "backend_options", "gemini", {"extra_config": {"http_options": {"headers": {
        "x-goog-api-key": NESTED_KEY}}}}, "backend_options.extra_config.http_options.headers.x-goog-api-key"),
    ("judges", "options", "openai", {"system_prompt": f"Bearer {NESTED_KEY}"}, "options.system_prompt"),
]


def test_nested_secrets_are_refused_and_never_stored_or_printed(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from brie_bench.cli import cli

    outputs: list[str] = []
    with loopback(max_lifetime_s=120) as srv:
        for i, (kind, field, backend, options, where) in enumerate(NESTED):
            data = loopback_suite(srv, prompts=2)
            if kind == "contenders":
                entry, name = data["contenders"]["brie"], "brie"
            else:
                data["judges"] = {"j": llm_judge(srv, backend, model="judge-model")}
                entry, name = data["judges"]["j"], "j"
            target = entry.setdefault(field, {})
            for key, value in options.items():
                if isinstance(value, dict) and isinstance(target.get(key), dict):
                    target[key].update(value)
                else:
                    target[key] = value
            suite = write_suite(tmp_path / f"nested{i}.yaml", data)
            for command in (["validate", str(suite)], ["run", str(suite)], ["run", str(suite), "--dry-run"]):
                result = CliRunner().invoke(cli, ["--db", str(tmp_path / "nested.db"), *command],
                                            env={"COLUMNS": "400"})
                outputs.append(result.output)
                assert result.exit_code == 2, (where, result.output)
                errors = [line for line in result.output.splitlines() if line.startswith("error")]
                assert len(errors) == 1 and f"{kind}.{name}.{where}" in errors[0], (where, result.output)
                assert "secret" in errors[0] or "credentials" in errors[0] or "key" in errors[0], errors[0]
        assert srv.requests == [], "a refused suite makes no call"
    assert not (tmp_path / "nested.db").exists(), "nothing is stored for a refused suite"
    haystacks = {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".yaml"}
    haystacks.update({f"output {i}": out.encode() for i, out in enumerate(outputs)})
    for needle in (NESTED_KEY, NESTED_KEY[-16:]):
        assert [where for where, data in haystacks.items() if needle.encode() in data] == []
