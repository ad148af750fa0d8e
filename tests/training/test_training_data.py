"""Chat JSONL checks: every structural error names file and line; warnings are counted, not fatal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from brie_bench.errors import InputError
from brie_bench.training import config_path, load_config
from brie_bench.training.cli import train_command
from brie_bench.training.data import check_data, check_files, read_chat_jsonl, token_stats

SAMPLE = Path(load_config(config_path("smoke")).data.train[0])
SAMPLE_VALIDATION = Path(load_config(config_path("smoke")).data.validation[0])


def chat(user: str, answer: str, system: str | None = None) -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    return {"messages": [*messages, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def write_lines(path: Path, lines: list[str | dict]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_base_path: Path) -> object:
    """The tiny Qwen2 tokenizer (ChatML template), from the session's offline tiny model."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base_path)


def test_sample_dataset_is_clean_and_sized_for_the_smoke_config() -> None:
    report = check_files([SAMPLE], [SAMPLE_VALIDATION])
    assert report.problem_count == 0
    assert len(report.train_examples) == 24 and len(report.validation_examples) == 4
    assert not report.leaked and not report.train[0].duplicates and not report.cross_file_duplicates
    counts = report.role_counts()
    assert counts["assistant"] == counts["user"] == 28
    texts = [m["content"] for ex in report.train_examples for m in ex.messages if m["role"] == "assistant"]
    assert len(set(texts)) == len(texts) and min(len(t) for t in texts) > 40


@pytest.mark.parametrize("line, message", [
    ("{not json", "invalid JSON"),
    ('["a", "list"]', "JSON object"),
    ('{"conversation": []}', "missing 'messages'"),
    ('{"messages": []}', "non-empty list"),
    ('{"messages": [{"role": "user", "content": "q"}], "extra": 1}', "unsupported key 'extra'"),
    ('{"messages": [{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "y"}]}',
     "role 'narrator' is not one of system, user, assistant"),
    ('{"messages": [{"content": "x"}, {"role": "assistant", "content": "y"}]}', "has no 'role'"),
    ('{"messages": [{"role": "user", "content": "   "}, {"role": "assistant", "content": "y"}]}',
     "messages[0].content is empty"),
    ('{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}]}', "must be a string"),
    ('{"messages": [{"role": "user", "content": "only a question"}]}', "no assistant turn"),
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}, '
     '{"role": "assistant", "content": "a"}]}', "system message may only come first"),
    ('{"messages": ["hello"]}', "must be an object"),
])
def test_each_structural_error_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write_lines(tmp_path / "data.jsonl", [chat("q1", "a1"), "", line, chat("q2", "a2")])
    report = read_chat_jsonl(path)
    assert report.problem_count == 1
    problem = report.problems[0]
    assert (problem.path, problem.line) == (str(path), 3)  # the blank line 2 still counts as a line
    assert message in problem.message
    assert report.example_count == 2
    full = check_files([path])
    with pytest.raises(InputError) as info:
        full.raise_for_problems()
    assert info.value.path == str(path) and info.value.line == 3 and message in str(info.value)


def test_problems_are_counted_beyond_the_first(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", ["{", "{", chat("q", "a"), "{"])
    report = check_files([path])
    assert report.problem_count == 3
    with pytest.raises(InputError, match=r"bad.jsonl:1: invalid JSON.*\(2 more problems in the data\)"):
        report.raise_for_problems()


def test_empty_and_non_utf8_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    assert "empty" in read_chat_jsonl(empty).problems[0].message
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(json.dumps(chat("q", "a")).encode() + b"\n" + b'{"messages": "caf\xe9"}\n')
    report = read_chat_jsonl(latin)
    assert report.problems[0].line == 2 and "UTF-8" in report.problems[0].message


def test_duplicates_leakage_and_cross_file_copies_are_warnings(tmp_path: Path) -> None:
    a = write_lines(tmp_path / "a.jsonl", [chat("q1", "a1"), chat("q2", "a2"), chat("q1", "a1")])
    b = write_lines(tmp_path / "b.jsonl", [chat("q2", "a2"), chat("q3", "a3")])
    v = write_lines(tmp_path / "v.jsonl", [chat("q3", "a3"), chat("q4", "a4")])
    report = check_files([a, b], [v])
    assert report.problem_count == 0
    assert report.train[0].duplicates == [(3, 1)]
    assert report.cross_file_duplicates == [(str(b), 1, str(a), 2)]
    assert report.leaked == [(str(v), 1)]
    text = "\n".join(report.warnings())
    assert f"{a}:3: duplicate of line 1" in text
    assert f"{b}:1: duplicate of {a}:2" in text
    assert f"{v}:1: validation example also appears" in text
    # A different system prompt makes a different example.
    c = write_lines(tmp_path / "c.jsonl", [chat("q1", "a1"), chat("q1", "a1", system="Be brief.")])
    assert read_chat_jsonl(c).duplicates == []


def test_token_lengths_match_the_chat_template_and_count_truncation(tiny_tokenizer, tmp_path: Path) -> None:
    long_answer = " ".join(["contemplation"] * 120)
    path = write_lines(tmp_path / "d.jsonl", [chat("short?", "yes"), chat("long?", long_answer)])
    examples = read_chat_jsonl(path).examples
    expected = [len(tiny_tokenizer.apply_chat_template(list(ex.messages), tokenize=True, return_dict=True)
                     ["input_ids"]) for ex in examples]
    limit = (expected[0] + expected[1]) // 2
    stats = token_stats(examples, tiny_tokenizer, limit)
    assert stats.lengths == expected and stats.total == sum(expected)
    assert stats.truncated == [(str(path), 2, expected[1])]
    assert stats.no_assistant_left == []
    # With assistant-only loss, an example whose prompt alone fills max_length has nothing left to learn.
    long_question = write_lines(tmp_path / "e.jsonl", [chat(long_answer + "?", "ok")])
    stats = token_stats(read_chat_jsonl(long_question).examples, tiny_tokenizer, limit, assistant_only_loss=True)
    assert stats.no_assistant_left == [(str(long_question), 1)]


def test_check_data_without_problems_computes_tokens_for_both_sets(tiny_tokenizer) -> None:
    report = check_data([SAMPLE], [SAMPLE_VALIDATION], tokenizer=tiny_tokenizer, max_length=64)
    assert report.train_tokens is not None and report.validation_tokens is not None
    assert len(report.train_tokens.lengths) == 24 and len(report.validation_tokens.lengths) == 4
    assert len(report.train_tokens.truncated) == 24  # every sample answer is longer than 64 tokens
    assert any("truncated to max_length 64" in w for w in report.warnings())


def test_tokenizer_without_chat_template_is_an_input_error(tiny_tokenizer) -> None:
    import copy

    bare = copy.deepcopy(tiny_tokenizer)
    bare.chat_template = None
    with pytest.raises(InputError, match="no chat template"):
        token_stats(read_chat_jsonl(SAMPLE).examples[:1], bare, 100)


def test_cli_check_data_prints_the_summary(tiny_tokenizer, tmp_path: Path) -> None:
    result = CliRunner().invoke(train_command, [str(config_path("smoke")), "--check-data"],
                                env={"BRIE_BENCH_CACHE": os.environ["BRIE_BENCH_CACHE"], "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "examples: 24 train, 4 validation" in out
    assert "roles: system 9, user 28, assistant 28" in out
    assert "0 of 24 over max_length 512" in out
    assert "train: " in out and " tokens, mean " in out


def test_cli_check_data_lists_problems_then_raises_the_first(tmp_path: Path) -> None:
    bad = write_lines(tmp_path / "bad.jsonl", [chat("q", "a"), '{"messages": [{"role": "bot", "content": "x"}]}'])
    result = CliRunner().invoke(train_command, [str(config_path("smoke")), "--check-data", "--train-file",
                                                str(bad)], env={"COLUMNS": "200"})
    assert isinstance(result.exception, InputError)
    assert result.exception.line == 2 and result.exception.path == str(bad)
    assert "role 'bot'" in result.output
