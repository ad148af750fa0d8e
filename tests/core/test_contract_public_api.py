"""The plugin contract stays one small page, and each rule behind it lives in one place.

* `brie_bench.api` holds only the contract; helpers have public modules of their own, and the
  built-in plugins import nothing but those public modules (they are the examples authors copy).
* Built-ins are listed explicitly (`BUILTIN_PLUGINS`), and the list matches the `plugins/` folder.
* Batch mode is a declared capability (`BatchBackend`), not discovered method by method.
* The HTTP status -> error kind ladder is one table; each provider only overrides what its API
  says differently (checked here status by status, beyond the loopback tests' single cases).
* `--plugins-dir` is defined in one module; the tiny tokenizer's corpus, now a data file, is
  exactly the corpus the tiny models were built from.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from brie_bench import api, http_helpers
from brie_bench.api import BackendContext, BatchBackend, PermanentError, TransientError
from brie_bench.cli_options import plugins_dir_from
from brie_bench.plugin_manager import BUILTIN_PLUGINS, load_plugins
from brie_bench.plugins.anthropic_backend import AnthropicBackend, AnthropicOptions
from brie_bench.plugins.gemini_backend import GeminiBackend, GeminiOptions
from brie_bench.plugins.hf import HFBackend
from brie_bench.plugins.openai_backend import OpenAIBackend, OpenAIOptions
from brie_bench.testing import tiny

REPO = Path(__file__).parents[2]

#: The modules docs/writing-a-plugin.md names as public ("The public modules").
PUBLIC_MODULES = {"brie_bench.api", "brie_bench.verdicts", "brie_bench.http_helpers", "brie_bench.batch_poll",
                  "brie_bench.bounded", "brie_bench.textsafe", "brie_bench.testing.tiny", "brie_bench.real_models",
                  "brie_bench.testing", "brie_bench"}

#: What the contract is: nothing else may be exported by brie_bench.api.
CONTRACT = {"hookimpl", "PROJECT_NAME", "ModelBackend", "BackendOptions", "Judge", "JudgeOptions", "Limits",
            "BackendContext", "JudgeContext", "BatchBackend", "ChoiceLogprobs", "stable_hash", "resolve_relative",
            "RemoteBackend", "RemoteOptions",
            "CallError", "ErrorKind", "TransientError", "PermanentError", "InputError", "MissingKeyError",
            "PluginError",
            "StopRun", "BlindedPair", "GenerationRequest", "GenerationResult", "JudgeResult", "Message", "ModelSource",
            "SamplingParams", "Usage", "DEFAULT_CRITERIA", "LABELS", "Label", "LabelVerdict"}


def _brie_imports(path: Path) -> set[str]:
    """Every `brie_bench...` module a source file imports (a `from brie_bench import x` counts as brie_bench.x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("brie_bench")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("brie_bench"):
            if node.module == "brie_bench":
                found |= {f"brie_bench.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return found


def test_api_exports_only_the_contract() -> None:
    assert set(api.__all__) == CONTRACT
    for name in api.__all__:
        assert hasattr(api, name), name
    for helper in ("parse_verdict", "json_object", "BatchPoll", "tiny_models", "real_models", "option_rows",
                   "mapping_or_empty", "suite_path_field", "safe_message"):
        assert not hasattr(api, helper), f"brie_bench.api still carries the helper {helper}"


@pytest.mark.parametrize("path", sorted((REPO / "plugins").glob("[!_]*.py")), ids=lambda p: p.stem)
def test_builtin_plugins_import_only_public_modules(path: Path) -> None:
    private = {m for m in _brie_imports(path) if m not in PUBLIC_MODULES}
    assert not private, f"{path.name} imports non-public modules {sorted(private)}"


def test_the_public_modules_are_the_ones_the_doc_lists() -> None:
    doc = (REPO / "docs" / "writing-a-plugin.md").read_text(encoding="utf-8")
    for module in PUBLIC_MODULES - {"brie_bench"}:
        assert f"| `{module}` |" in doc, module


def test_builtins_are_listed_explicitly_and_match_the_plugins_folder() -> None:
    on_disk = {f"brie_bench.plugins.{p.stem}" for p in (REPO / "plugins").glob("[!_]*.py")}
    assert set(BUILTIN_PLUGINS) == on_disk
    assert len(BUILTIN_PLUGINS) == len(set(BUILTIN_PLUGINS))
    source = (REPO / "brie_bench" / "plugin_manager.py").read_text(encoding="utf-8")
    assert "pkgutil" not in source and "iter_modules" not in source
    registry = load_plugins(entry_points=False)
    assert registry.failures == []
    assert {o for o in registry.origins.values()} == {"built-in"}
    assert {"openai", "anthropic", "gemini", "hf"} <= set(registry.backends)


def test_batch_mode_is_a_declared_capability() -> None:
    for cls, options in ((OpenAIBackend, OpenAIOptions), (AnthropicBackend, AnthropicOptions),
                         (GeminiBackend, GeminiOptions)):
        backend = cls("m", options(), BackendContext("judge", "j"))
        assert isinstance(backend, BatchBackend) and backend.supports_batch(), cls.__name__
    assert not issubclass(HFBackend, BatchBackend)

    class HalfBatch(api.ModelBackend):  # one method of two is not the capability
        name = "half"

        async def submit_batch(self, items: list[tuple[str, api.GenerationRequest]]) -> str:
            return "b"

    half = HalfBatch("m", api.BackendOptions(), BackendContext("judge", "j"))
    assert not isinstance(half, BatchBackend) and not half.supports_batch()


def test_the_engine_calls_batch_methods_without_type_ignores() -> None:
    for name in ("engine.py", "batches.py"):
        assert "type: ignore[attr-defined]" not in (REPO / "brie_bench" / name).read_text(encoding="utf-8"), name
    engine = (REPO / "brie_bench" / "engine.py").read_text(encoding="utf-8")
    assert "submit_batch" not in engine and "poll_batch" not in engine  # batch judging lives in batches.py


# -- one status table ------------------------------------------------------------------------------

STATUSES = (400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529)


def _kind(error: object) -> tuple[str, bool]:
    assert isinstance(error, (TransientError, PermanentError))
    return error.kind, error.transient


def _backends() -> dict[str, object]:
    ctx = BackendContext("judge", "j")
    return {"openai": OpenAIBackend("m", OpenAIOptions(), ctx),
            "anthropic": AnthropicBackend("m", AnthropicOptions(), ctx),
            "gemini": GeminiBackend("m", GeminiOptions(), ctx)}


def _provider_error(provider: str, backend: object, status: int, **extra: object) -> object:
    if provider == "gemini":
        return backend._status_error(status, extra.get("gstatus"), str(extra.get("detail", "no")),  # type: ignore[attr-defined]
                                     extra.get("body"), extra.get("headers"))
    code = extra.get("code")
    return backend._status_error(status, "no", extra.get("headers"), code)  # type: ignore[attr-defined]


#: What each provider says differently from the shared table, and nothing more.
OVERRIDES = {"openai": {}, "anthropic": {402: ("quota", False)}, "gemini": {409: ("bad_request", False)}}


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_each_provider_follows_the_shared_table_except_its_overrides(provider: str) -> None:
    backend = _backends()[provider]
    for status in STATUSES:
        expected = OVERRIDES[provider].get(status) or http_helpers.status_kind(status)
        error = _provider_error(provider, backend, status)
        assert _kind(error) == expected, (provider, status)
        assert error.status == status  # type: ignore[attr-defined]


def test_the_shared_table() -> None:
    assert http_helpers.status_kind(429) == ("rate_limit", True)
    assert http_helpers.status_kind(401) == http_helpers.status_kind(403) == ("auth", False)
    assert http_helpers.status_kind(404) == ("model", False)
    assert http_helpers.status_kind(408) == ("timeout", True)
    assert http_helpers.status_kind(409) == ("server", True)
    assert http_helpers.status_kind(503) == http_helpers.status_kind(529) == ("server", True)
    assert http_helpers.status_kind(400) == http_helpers.status_kind(422) == ("bad_request", False)
    limited = http_helpers.status_error("slow down", 429, headers={"retry-after": "7"})
    assert isinstance(limited, TransientError) and limited.retry_after == 7.0
    assert http_helpers.status_error("x", 429, headers={"retry-after": "7"}, retry_after=2.0).retry_after == 2.0
    assert http_helpers.status_error("x", 503, headers={"retry-after": "7"}).retry_after is None
    assert _kind(http_helpers.status_error("x", 400, overrides={400: ("auth", False)})) == ("auth", False)
    assert _kind(http_helpers.status_error("x", 451, fallback=("refusal", False))) == ("refusal", False)


def test_provider_specific_answers_beyond_the_table() -> None:
    b = _backends()
    assert _kind(_provider_error("openai", b["openai"], 429, code="insufficient_quota")) == ("quota", False)
    assert _kind(_provider_error("openai", b["openai"], 400, code="content_filter")) == ("refusal", False)
    assert _kind(_provider_error("openai", b["openai"], 500, code="content_filter")) == ("server", True)
    assert _kind(b["anthropic"]._status_error(400, "no", None, "overloaded_error")) == ("server", True)  # type: ignore[attr-defined]
    assert _kind(b["anthropic"]._status_error(401, "no", None, "overloaded_error")) == ("auth", False)  # type: ignore[attr-defined]
    invalid_key = {"error": {"details": [{"reason": "API_KEY_INVALID"}]}}
    assert _kind(_provider_error("gemini", b["gemini"], 400, body=invalid_key)) == ("auth", False)
    assert _kind(_provider_error("gemini", b["gemini"], 404, body=invalid_key)) == ("auth", False)
    assert _kind(_provider_error("gemini", b["gemini"], 429, body=invalid_key)) == ("rate_limit", True)
    assert _kind(_provider_error("gemini", b["gemini"], 504, gstatus="DEADLINE_EXCEEDED")) == ("timeout", True)
    assert _kind(_provider_error("gemini", b["gemini"], 404, gstatus="DEADLINE_EXCEEDED")) == ("model", False)
    assert _kind(_provider_error("gemini", b["gemini"], 403, gstatus="DEADLINE_EXCEEDED")) == ("auth", False)
    delay = {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}]}}
    assert _provider_error("gemini", b["gemini"], 429, body=delay).retry_after == 3.0  # type: ignore[attr-defined]
    assert _provider_error("gemini", b["gemini"], 429, body=delay,  # type: ignore[attr-defined]
                           headers={"retry-after": "1"}).retry_after == 1.0


def test_no_provider_writes_its_own_status_ladder() -> None:
    for name in ("openai_backend.py", "anthropic_backend.py", "gemini_backend.py"):
        source = (REPO / "plugins" / name).read_text(encoding="utf-8")
        assert "status_error(" in source
        assert "status in (401, 403)" not in source and "status >= 500" not in source, name


# -- --plugins-dir in one place; the tiny corpus as data --------------------------------------------

def test_plugins_dir_option_is_defined_once() -> None:
    holders = [p.relative_to(REPO).as_posix() for p in (REPO / "brie_bench").rglob("*.py")
               if '"--plugins-dir"' in p.read_text(encoding="utf-8")]
    assert holders == ["brie_bench/cli_options.py"]
    assert plugins_dir_from(["run", "s.yaml"]) is None
    assert plugins_dir_from(["--plugins-dir", "a", "run", "s.yaml"]) == "a"
    assert plugins_dir_from(["--plugins-dir=a", "run", "--plugins-dir", "b"]) == "b"  # the one the command uses


def test_tiny_corpus_is_read_from_its_data_file_unchanged() -> None:
    data = Path(tiny.__file__).parent / tiny.CORPUS_FILE
    assert data.is_file()
    assert "_SENTENCES" not in Path(tiny.__file__).read_text(encoding="utf-8")
    # The corpus the tiny tokenizer was trained on before the move: a changed corpus changes
    # every tiny model's tokens, which must come with a TINY_VERSION bump.
    digest = hashlib.sha256("\n".join(tiny.CORPUS).encode("utf-8")).hexdigest()
    assert (tiny.TINY_VERSION, len(tiny.CORPUS), digest) == (
        "v1", 558, "fdaf0c69a301a6c5e2e3d9fceff3893afbfc75a0668d73f6cd6cc85daee0d086")
    assert tiny.is_tiny("tiny:qwen2") and "tiny:qwen2-lora" in tiny.TINY_IDS


def test_a_batch_judge_on_a_backend_without_the_capability_is_refused_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from brie_bench.cli import cli
    from helpers import FIXTURE_PLUGINS, scripted_suite, write_yaml

    judge = {"type": "llm", "backend": "scripted", "model": "base", "batch": True}
    path = write_yaml(tmp_path / "suite.yaml", scripted_suite(judges={"batched": judge}))
    result = CliRunner().invoke(cli, ["--plugins-dir", str(FIXTURE_PLUGINS), "validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "has no batch API" in result.output and "BatchBackend" in result.output
    assert "Traceback" not in result.output
