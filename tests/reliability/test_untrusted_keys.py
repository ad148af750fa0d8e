"""The environment's default key goes only to the provider's own host.

A suite's `base_url` used to receive `OPENAI_API_KEY` (or the Anthropic or Gemini
key) whatever host it named. Now a suite that points `base_url` elsewhere must
name the key variable (`api_key_env`) or set `require_key: false`; otherwise
`validate` and `run` refuse it with one line (exit 2) before any call, and
`validate` and `--dry-run` show where every backend's calls go.

The "elsewhere" here is a real loopback server, so the test can see that no
request (and no key) ever reached it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from brie_bench.cli import cli
from hostile.kit import contender, llm_judge, loopback, loopback_suite, model_calls, write_suite

KEYS = {"OPENAI_API_KEY": "sk-proj-DEFAULTopenai-0123456789", "ANTHROPIC_API_KEY": "sk-ant-DEFAULTanthropic-0123",
        "GEMINI_API_KEY": "AIzaDEFAULTgemini-0123456789abcdef", "MY_GATEWAY_KEY": "gw-NAMED-key-9876543210"}
DEFAULT_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BRIE_BENCH_RETRY_BASE_S", "0.01")


def cli_run(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "k.db"), *args], env={"COLUMNS": "400"})
    return result.exit_code, result.output


def headers_text(srv: Any) -> str:
    return " ".join(" ".join(r.headers.values()) for r in srv.requests)


def suite_where(srv: Any, tmp_path: Path, role: str, provider: str, **opts: Any) -> Path:
    """A loopback suite whose contender `brie` (role contender) or judge (role judge) uses `opts`."""
    data = loopback_suite(srv, prompts=2)
    if role == "contender":
        spec = contender(srv, "brie-model")
        spec["options"].pop("require_key")
        spec["options"].update(opts)
        data["contenders"]["brie"] = spec
    else:
        spec = llm_judge(srv, provider, model="judge-model")
        spec["backend_options"].pop("require_key")
        spec["backend_options"].update(opts)
        data["judges"] = {"judge": spec}
    return write_suite(tmp_path / "suite.yaml", data)


@pytest.mark.parametrize("role, provider", [("contender", "openai"), ("judge", "openai"), ("judge", "anthropic"),
                                            ("judge", "gemini")])
def test_base_url_elsewhere_without_a_named_key_is_refused(tmp_path: Path, role: str, provider: str) -> None:
    with loopback() as srv:
        suite = suite_where(srv, tmp_path, role, provider)
        for command in (["validate", str(suite)], ["run", str(suite)], ["run", str(suite), "--dry-run"]):
            code, out = cli_run(tmp_path, *command)
            assert code == 2, out
            errors = [line for line in out.splitlines() if line.startswith("error")]
            assert len(errors) == 1 and "Traceback" not in out, out
            where = "contenders.brie.options.base_url" if role == "contender" else "judges.judge.backend_options.base_url"
            assert where in errors[0] and DEFAULT_ENV[provider] in errors[0] and "api_key_env" in errors[0], out
        assert srv.requests == [], "nothing may be sent before the suite is accepted"
    for value in KEYS.values():
        assert value not in out


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_named_key_goes_to_the_named_endpoint_and_the_default_key_does_not(tmp_path: Path, provider: str) -> None:
    with loopback() as srv:
        suite = suite_where(srv, tmp_path, "judge", provider, api_key_env="MY_GATEWAY_KEY")
        code, out = cli_run(tmp_path, "validate", str(suite))
        assert code == 0, out
        assert f"judge judge: {provider} judge-model -> {srv.url(provider)} (key from MY_GATEWAY_KEY)" in \
            " ".join(out.split()), out
        code, out = cli_run(tmp_path, "run", str(suite))
        assert code == 0, out
        sent = headers_text(srv)
    assert KEYS["MY_GATEWAY_KEY"] in sent
    assert KEYS[DEFAULT_ENV[provider]] not in sent


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_require_key_false_sends_no_environment_key(tmp_path: Path, provider: str) -> None:
    """Not even through the SDK's own fallback: Anthropic's and Gemini's clients read the environment on None."""
    with loopback() as srv:
        suite = suite_where(srv, tmp_path, "judge", provider, require_key=False)
        code, out = cli_run(tmp_path, "run", str(suite), "--dry-run")
        assert code == 0, out
        assert f"-> {srv.url(provider)} (no key)" in " ".join(out.split()), out
        code, out = cli_run(tmp_path, "run", str(suite))
        assert code == 0, out
        assert model_calls(srv), "the judge really was called"
        sent = headers_text(srv)
    for value in KEYS.values():
        assert value not in sent


@pytest.mark.parametrize("provider, url", [("openai", "https://api.openai.com/v1"),
                                           ("anthropic", "https://api.anthropic.com"),
                                           ("gemini", "https://generativelanguage.googleapis.com")])
def test_the_providers_own_host_keeps_its_default_key(tmp_path: Path, provider: str, url: str) -> None:
    with loopback() as srv:
        suite = suite_where(srv, tmp_path, "judge", provider, base_url=url)
    code, out = cli_run(tmp_path, "validate", str(suite))
    assert code == 0, out
    assert f"-> {url} (key from {DEFAULT_ENV[provider]}" in " ".join(out.split()), out
    plain = suite.read_text().replace(url, url.replace("https://", "http://"))
    suite.write_text(plain, encoding="utf-8")
    code, out = cli_run(tmp_path, "validate", str(suite))
    assert code == 2 and "api_key_env" in out, "the key never travels over plain http"


def test_validate_and_dry_run_show_where_every_backend_calls_go(tmp_path: Path) -> None:
    repo = Path(__file__).parents[2]
    code, out = cli_run(tmp_path, "validate", str(repo / "suites" / "multi_domain.yaml"))
    assert code == 0, out
    text = " ".join(out.split())
    for line in ("contender baseline: hf Qwen/Qwen2.5-3B-Instruct -> this machine (no key)",
                 "judge claude: anthropic", "-> https://api.anthropic.com (key from ANTHROPIC_API_KEY)",
                 "-> https://api.openai.com/v1 (key from OPENAI_API_KEY)",
                 "-> https://generativelanguage.googleapis.com (key from GEMINI_API_KEY or GOOGLE_API_KEY)"):
        assert line in text, out
    code, out = cli_run(tmp_path, "run", str(repo / "suites" / "multi_domain.yaml"), "--dry-run")
    assert code == 0, out
    assert "calls go to:" in out and "-> https://api.anthropic.com" in " ".join(out.split()), out
