"""Untrusted input files: deep nesting and memory bombs are refused with one line, exit 2.

Every input that someone else may hand over (a suite, a prompts file, a judging
template, a training config, training data, a legacy results file) is read
boundedly: nesting deeper than `MAX_DEPTH`, a line or file over its cap, and
anything that is not a regular file (a FIFO hangs `open()` forever; `/dev/zero`
never ends) give one line naming the file, and exit code 2, never a traceback.

The CLI runs in a subprocess with a timeout so a regression (a hang on a FIFO)
fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from brie_bench import bounded
from brie_bench.cli import cli
from brie_bench.errors import InputError
from brie_bench.training import data as training_data

REPO = Path(__file__).parents[2]
SMOKE = (REPO / "suites" / "smoke.yaml").read_text(encoding="utf-8")
TRAIN_SMOKE = REPO / "training" / "configs" / "smoke.yaml"
DEPTH = 600  # about 1 KB of suite: PyYAML's composer recursed per level and raised RecursionError


def brie(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "brie_bench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_error_line(result: subprocess.CompletedProcess[str] | object, fragment: str) -> str:
    """The run failed with exit 2 and printed exactly one error line holding `fragment`, no traceback."""
    code = getattr(result, "returncode", getattr(result, "exit_code", None))
    text = (getattr(result, "stdout", "") or "") + (getattr(result, "stderr", "") or "")
    if not text and hasattr(result, "output"):
        text = result.output
    assert code == 2, text
    assert "Traceback" not in text and "RecursionError" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error")]
    assert len(errors) == 1, text
    assert fragment in errors[0], text
    return errors[0]


def deep_suite(tmp_path: Path) -> Path:
    """The smoke suite with one extra key nested DEPTH levels deep in flow style (1.2 KB more)."""
    text = SMOKE.replace("description: Offline", "extra: " + "[" * DEPTH + "]" * DEPTH + "\ndescription: Offline")
    (tmp_path / "prompts").symlink_to(REPO / "suites" / "prompts")
    path = tmp_path / "deep.yaml"
    path.write_text(text, encoding="utf-8")
    assert len(text) - len(SMOKE) < 1300  # the nesting itself is about 1 KB
    return path


# -- item 7: deep nesting -----------------------------------------------------------------


def test_deep_suite_is_one_line_in_validate_and_run(tmp_path: Path) -> None:
    suite = deep_suite(tmp_path)
    for command in (["validate", str(suite)], ["run", str(suite), "--dry-run"], ["run", str(suite)]):
        line = one_error_line(brie("--db", str(tmp_path / "x.db"), *command, cwd=tmp_path), "nested more than")
        assert "deep.yaml:" in line
    assert not (tmp_path / "x.db").exists()


def test_deep_block_style_and_recursive_alias_are_refused(tmp_path: Path) -> None:
    from brie_bench.yamlload import loads_yaml

    block = "a:\n" + "".join("  " * i + "-\n" for i in range(1, DEPTH))
    for text in (block, "a: &x [*x, *x]", "a: " + "{b: " * DEPTH + "1" + "}" * DEPTH):
        with pytest.raises(InputError, match="nested more than"):
            loads_yaml(text, "s.yaml")
    # A reasonable depth still loads.
    data, _ = loads_yaml("a: " + "[" * 20 + "1" + "]" * 20, "s.yaml")
    assert data["a"]


def test_deep_training_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(TRAIN_SMOKE.read_text(encoding="utf-8") + "\nextra: " + "[" * DEPTH + "]" * DEPTH + "\n",
                      encoding="utf-8")
    one_error_line(brie("train", str(config), "--plan", cwd=tmp_path), "nested more than")


def test_deep_json_line_in_training_data_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(good) + "\n" + '{"messages": ' + "[" * 5000 + "]" * 5000 + "}\n", encoding="utf-8")
    report = training_data.read_chat_jsonl(data)
    assert report.example_count == 1
    assert [(p.line, "nested more than" in p.message) for p in report.problems] == [(2, True)]
    result = brie("train", str(TRAIN_SMOKE), "--plan", "--train-file", str(data), cwd=tmp_path)
    assert "train.jsonl:2" in one_error_line(result, "nested more than")


def test_deep_json_line_in_a_legacy_file_is_one_line(tmp_path: Path) -> None:
    legacy = tmp_path / "judge.jsonl"
    legacy.write_text('{"prompt": ' + "[" * 5000 + "]" * 5000 + "}\n", encoding="utf-8")
    result = brie("--db", str(tmp_path / "l.db"), "import", "legacy", str(legacy), cwd=tmp_path)
    assert "judge.jsonl:1" in one_error_line(result, "nested more than")


def test_fifo_legacy_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "judge.jsonl"
    os.mkfifo(fifo)
    result = brie("--db", str(tmp_path / "l.db"), "import", "legacy", str(fifo), cwd=tmp_path, timeout=60)
    assert "judge.jsonl" in one_error_line(result, "not a regular file")


def test_json_depth_scan_skips_strings_and_is_linear() -> None:
    assert bounded.json_depth('{"a": "[[[[[[[[[[", "b": [1, [2]]}') == 3
    assert bounded.json_depth('"\\"[[[["') == 0
    assert bounded.loads_json('{"a": "' + "[" * 10_000 + '"}') == {"a": "[" * 10_000}
    with pytest.raises(bounded.TooDeep):
        bounded.loads_json("[" * 65 + "]" * 65)


# -- item 8: memory bombs and files that are not files -----------------------------------------


def test_fifo_prompts_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    os.mkfifo(tmp_path / "prompts" / "philosophy.yaml")
    suite = tmp_path / "suite.yaml"
    suite.write_text(SMOKE, encoding="utf-8")
    line = one_error_line(brie("validate", str(suite), cwd=tmp_path, timeout=60), "not a regular file")
    assert "philosophy.yaml" in line


def test_dev_zero_symlink_as_prompts_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "philosophy.yaml").symlink_to("/dev/zero")
    suite = tmp_path / "suite.yaml"
    suite.write_text(SMOKE, encoding="utf-8")
    # The symlink resolves outside the suite's folder, so it is refused before it is opened;
    # bounded.read_text refuses the device itself wherever it lies.
    one_error_line(brie("validate", str(suite), cwd=tmp_path, timeout=60), "prompts_file")
    with pytest.raises(InputError, match="not a regular file"):
        bounded.read_text("/dev/zero", 1000)


def test_fifo_suite_judging_template_and_training_data_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for reader in (lambda: bounded.read_text(fifo, 1000), lambda: training_data.read_chat_jsonl(fifo)):
        with pytest.raises(InputError, match="not a regular file"):
            reader()
    one_error_line(brie("validate", str(fifo), cwd=tmp_path, timeout=60), "not a regular file")
    result = brie("train", str(TRAIN_SMOKE), "--check-data", "--train-file", str(fifo), cwd=tmp_path, timeout=60)
    one_error_line(result, "not a regular file")


def test_a_single_example_over_the_line_cap_is_refused_without_tokenizing(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The 1 GB single-example file, scaled down: the cap is lowered so the test stays small."""
    monkeypatch.setattr(training_data, "MAX_LINE_BYTES", 64 * 1024)
    huge = {"messages": [{"role": "user", "content": "x" * 200_000}, {"role": "assistant", "content": "y"}]}
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps(good) + "\n" + json.dumps(huge) + "\n" + json.dumps(good) + "\n", encoding="utf-8")
    report = training_data.read_chat_jsonl(data)
    assert report.example_count == 2 and report.duplicates == [(3, 1)]  # lines after the long one still count
    assert [p.line for p in report.problems] == [2]
    assert "over the 65,536-byte limit" in report.problems[0].message
    assert report.bytes == data.stat().st_size  # the skipped line was still hashed and counted
    import hashlib

    assert report.sha256 == hashlib.sha256(data.read_bytes()).hexdigest()

    called = []
    monkeypatch.setattr("brie_bench.training.cli.load_tokenizer", lambda cfg: called.append(cfg))
    from brie_bench.training.cli import train_command

    result = CliRunner().invoke(train_command, [str(TRAIN_SMOKE), "--check-data", "--train-file", str(data)])
    assert isinstance(result.exception, InputError) and "over the 65,536-byte limit" in str(result.exception)
    assert called == [], "the tokenizer must never see an over-long example"


def test_default_line_cap_covers_the_one_gigabyte_example() -> None:
    assert training_data.MAX_LINE_BYTES <= 16 * 1024 * 1024 < 1024 ** 3


def test_oversized_judging_template_is_refused(tmp_path: Path) -> None:
    from plugins.llm_judge import MAX_TEMPLATE_BYTES, JudgeTemplate

    big = tmp_path / "t.j2"
    big.write_bytes(b"x" * (MAX_TEMPLATE_BYTES + 1))
    with pytest.raises(InputError, match="too large") as info:
        JudgeTemplate(str(big))
    assert info.value.field == "template"


def test_validate_cli_in_process_for_a_fifo_suite(tmp_path: Path) -> None:
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    result = CliRunner().invoke(cli, ["validate", str(fifo)])
    assert result.exit_code == 2 and "not a regular file" in result.output
