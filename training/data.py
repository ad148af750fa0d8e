"""Chat JSONL: reading and checking training data before any GPU time is spent.

One example per line: ``{"messages": [{"role": ..., "content": ...}, ...]}``.
Structural problems (bad JSON, unknown role, empty content, no assistant
turn) are *errors*: training refuses to start and the first one is raised as
an `InputError` naming file and line. Duplicates, truncation and
train/validation overlap are *warnings*: legitimate datasets can have them,
but the researcher should see the numbers, because each one silently changes
what the model learns (and truncation changes nothing in the step count,
while dropped examples do).

Token counts use the tokenizer's chat template exactly as TRL does
(`apply_chat_template(..., tokenize=True, return_dict=True)`), so "would be
truncated" here means truncated in training.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Sequence

from brie_bench.bounded import TooDeep, loads_json, open_regular
from brie_bench.errors import InputError

KNOWN_ROLES = ("system", "user", "assistant")
#: Longest line (one example) read. A longer one is a problem, skipped without being held in memory:
#: a 1 GB single-example file once made the tokenizer ask for 16 GB. 8 MiB is ~2M tokens, far past
#: any max_length.
MAX_LINE_BYTES = 8 * 1024 * 1024
#: Largest data file read.
MAX_DATA_BYTES = 4 * 1024 * 1024 * 1024
#: How many problems a file report keeps in full; the rest are only counted.
MAX_KEPT_PROBLEMS = 50


@dataclass(frozen=True)
class Problem:
    """One structural error, located by file and 1-based line."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Example:
    """A valid chat example and where it came from."""

    messages: tuple[dict[str, str], ...]
    path: str
    line: int

    def key(self) -> str:
        """Content identity used to find duplicates (same roles and texts, in order)."""
        return json.dumps([[m["role"], m["content"]] for m in self.messages], ensure_ascii=False)


@dataclass
class FileReport:
    """What one JSONL file holds, and what is wrong with it."""

    path: str
    sha256: str
    bytes: int
    examples: list[Example] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    #: (line, line of the first copy) for each repeated example within this file.
    duplicates: list[tuple[int, int]] = field(default_factory=list)
    role_counts: Counter[str] = field(default_factory=Counter)

    @property
    def example_count(self) -> int:
        return len(self.examples)


@dataclass
class TokenStats:
    """Token lengths after the chat template, against `max_length`."""

    max_length: int
    lengths: list[int] = field(default_factory=list)
    #: Examples longer than max_length (cut from the end in training).
    truncated: list[tuple[str, int, int]] = field(default_factory=list)  # (path, line, tokens)
    #: Examples whose first assistant token lies beyond max_length: with assistant-only loss TRL drops them.
    no_assistant_left: list[tuple[str, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.lengths)

    @property
    def longest(self) -> int:
        return max(self.lengths, default=0)

    @property
    def mean(self) -> float:
        return self.total / len(self.lengths) if self.lengths else 0.0


@dataclass
class DataReport:
    """The result of checking every train and validation file of a config."""

    train: list[FileReport]
    validation: list[FileReport]
    #: Validation examples that also appear in the training data: (validation path, line).
    leaked: list[tuple[str, int]] = field(default_factory=list)
    #: Duplicates across different training files: (path, line, first path, first line).
    cross_file_duplicates: list[tuple[str, int, str, int]] = field(default_factory=list)
    train_tokens: TokenStats | None = None
    validation_tokens: TokenStats | None = None

    @property
    def files(self) -> list[FileReport]:
        return [*self.train, *self.validation]

    @property
    def train_examples(self) -> list[Example]:
        return [ex for f in self.train for ex in f.examples]

    @property
    def validation_examples(self) -> list[Example]:
        return [ex for f in self.validation for ex in f.examples]

    @property
    def problem_count(self) -> int:
        return sum(f.problem_count for f in self.files)

    @property
    def problems(self) -> list[Problem]:
        return [p for f in self.files for p in f.problems]

    def role_counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.role_counts)
        return total

    def raise_for_problems(self) -> None:
        """Raise the first structural error as an InputError (saying how many more there are)."""
        if not self.problem_count:
            return
        first = self.problems[0]
        more = self.problem_count - 1
        suffix = f" ({more} more problem{'s' if more != 1 else ''} in the data)" if more else ""
        raise InputError(first.message + suffix, path=first.path, line=first.line)

    def warnings(self) -> list[str]:
        """Human-readable lines for everything suspicious that does not stop training."""
        out: list[str] = []
        for f in self.files:
            for line, first in f.duplicates[:5]:
                out.append(f"{f.path}:{line}: duplicate of line {first}")
            if len(f.duplicates) > 5:
                out.append(f"{f.path}: {len(f.duplicates) - 5} more duplicates")
        for path, line, first_path, first_line in self.cross_file_duplicates[:5]:
            out.append(f"{path}:{line}: duplicate of {first_path}:{first_line}")
        for path, line in self.leaked[:5]:
            out.append(f"{path}:{line}: validation example also appears in the training data")
        if len(self.leaked) > 5:
            out.append(f"{len(self.leaked) - 5} more validation examples appear in the training data")
        for stats in (self.train_tokens, self.validation_tokens):
            if stats is None:
                continue
            for path, line, tokens in stats.truncated[:5]:
                out.append(f"{path}:{line}: {tokens} tokens, truncated to max_length {stats.max_length}")
            if len(stats.truncated) > 5:
                out.append(f"{len(stats.truncated) - 5} more examples exceed max_length {stats.max_length}")
            for path, line in stats.no_assistant_left[:5]:
                out.append(f"{path}:{line}: no assistant token within max_length {stats.max_length}; "
                           "dropped under assistant_only_loss")
        return out


def _check_message(msg: Any, i: int) -> str | None:
    """The problem with one message, or None."""
    if not isinstance(msg, dict):
        return f"messages[{i}] must be an object with 'role' and 'content'"
    extra = set(msg) - {"role", "content"}
    if extra:
        return f"messages[{i}] has unsupported key {sorted(extra)[0]!r} (only 'role' and 'content')"
    role = msg.get("role")
    if role not in KNOWN_ROLES:
        if role is None:
            return f"messages[{i}] has no 'role'"
        return f"messages[{i}].role {role!r} is not one of {', '.join(KNOWN_ROLES)}"
    content = msg.get("content")
    if not isinstance(content, str):
        return f"messages[{i}].content must be a string"
    if not content.strip():
        return f"messages[{i}].content is empty"
    return None


def check_record(record: Any) -> str | None:
    """Why one parsed JSONL record is not a usable chat example, or None if it is."""
    if not isinstance(record, dict):
        return 'each line must be a JSON object like {"messages": [...]}'
    if "messages" not in record:
        return "missing 'messages'"
    extra = set(record) - {"messages"}
    if extra:
        return f"unsupported key {sorted(extra)[0]!r} (only 'messages')"
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    for i, msg in enumerate(messages):
        problem = _check_message(msg, i)
        if problem:
            return problem
    roles = [m["role"] for m in messages]
    if "assistant" not in roles:
        return "no assistant turn: nothing to learn from"
    if "system" in roles[1:]:
        return f"messages[{roles.index('system', 1)}]: a system message may only come first"
    return None


def _lines(fh: Any, digest: Any, path: str) -> Iterable[tuple[int, bytes | int]]:
    """(line number, bytes) per line, or (line number, length) for a line over MAX_LINE_BYTES (not kept).

    Streams the file, hashing every byte, so memory stays bounded by one line.
    """
    total = 0
    lineno = 0
    while True:
        chunk = fh.readline(MAX_LINE_BYTES + 1)
        if not chunk:
            return
        lineno += 1
        digest.update(chunk)
        total += len(chunk)
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            length = len(chunk)
            while True:  # skip the rest of the line, still hashing it
                rest = fh.readline(1 << 20)
                digest.update(rest)
                total += len(rest)
                length += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield lineno, length
        else:
            yield lineno, chunk
        if total > MAX_DATA_BYTES:
            raise InputError(f"data file too large (more than {MAX_DATA_BYTES:,} bytes)", path=path)


def read_chat_jsonl(path: str | Path) -> FileReport:
    """Read and check one chat JSONL file; blank lines are skipped, every other line must be an example.

    Only a regular file is read (a FIFO or a device is refused with one line),
    line by line, each line at most MAX_LINE_BYTES.
    """
    digest = hashlib.sha256()
    report = FileReport(path=str(path), sha256="", bytes=0)

    def problem(line: int, message: str) -> None:
        report.problem_count += 1
        if len(report.problems) < MAX_KEPT_PROBLEMS:
            report.problems.append(Problem(str(path), line, message))

    seen: dict[str, int] = {}
    byte_count = 0
    with open_regular(path, "data file") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_DATA_BYTES:
            raise InputError(f"data file too large ({size:,} bytes, limit {MAX_DATA_BYTES:,})", path=str(path))
        for lineno, line_bytes in _lines(fh, digest, str(path)):
            byte_count += line_bytes if isinstance(line_bytes, int) else len(line_bytes)
            if isinstance(line_bytes, int):
                problem(lineno, f"line is {line_bytes:,} bytes, over the {MAX_LINE_BYTES:,}-byte limit for one "
                                "example: split it or leave it out")
                continue
            _read_line(report, problem, seen, lineno, line_bytes, str(path))
    report.sha256 = digest.hexdigest()
    report.bytes = byte_count
    if not report.examples and not report.problem_count:
        problem(1, "no examples: the file is empty")
    return report


def _read_line(report: FileReport, problem: Any, seen: dict[str, int], lineno: int, line_bytes: bytes,
               path: str) -> None:
    """Check one line and add its example (or its problem) to `report`."""
    if not line_bytes.strip():
        return
    try:
        text = line_bytes.decode("utf-8")
    except UnicodeDecodeError:
        problem(lineno, "line is not UTF-8 text")
        return
    try:
        record = loads_json(text)  # depth-bounded: deep nesting is a problem line, not a RecursionError
    except TooDeep as exc:
        problem(lineno, f"invalid JSON: {exc}")
        return
    except json.JSONDecodeError as exc:
        problem(lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
        return
    issue = check_record(record)
    if issue:
        problem(lineno, issue)
        return
    example = Example(tuple({"role": m["role"], "content": m["content"]} for m in record["messages"]),
                      path, lineno)
    key = example.key()
    if key in seen:
        report.duplicates.append((lineno, seen[key]))
    else:
        seen[key] = lineno
    report.role_counts.update(m["role"] for m in example.messages)
    report.examples.append(example)


def check_files(train: Sequence[str | Path], validation: Sequence[str | Path] = ()) -> DataReport:
    """Structural checks of every file, plus duplicates across files and train/validation leakage."""
    report = DataReport(train=[read_chat_jsonl(p) for p in train],
                        validation=[read_chat_jsonl(p) for p in validation])
    first_seen: dict[str, tuple[str, int]] = {}
    for f in report.train:
        local: set[str] = set()
        for ex in f.examples:
            key = ex.key()
            if key in first_seen and key not in local:
                report.cross_file_duplicates.append((ex.path, ex.line, *first_seen[key]))
            first_seen.setdefault(key, (ex.path, ex.line))
            local.add(key)
    for ex in report.validation_examples:
        if ex.key() in first_seen:
            report.leaked.append((ex.path, ex.line))
    return report


def token_stats(examples: Iterable[Example], tokenizer: Any, max_length: int, *,
                assistant_only_loss: bool = False) -> TokenStats:
    """Token lengths under the tokenizer's chat template, as TRL will see them."""
    if not getattr(tokenizer, "chat_template", None):
        raise InputError("the base model's tokenizer has no chat template; chat data cannot be formatted")
    stats = TokenStats(max_length=max_length)
    for ex in examples:
        messages = list(ex.messages)
        n = len(_encode(tokenizer, messages))
        stats.lengths.append(n)
        if n > max_length:
            stats.truncated.append((ex.path, ex.line, n))
            if assistant_only_loss:
                first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
                prompt = len(_encode(tokenizer, messages[:first], add_generation_prompt=True)) if first else 0
                if prompt >= max_length:
                    stats.no_assistant_left.append((ex.path, ex.line))
    return stats


def _encode(tokenizer: Any, messages: list[dict[str, str]], **kwargs: Any) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)
    return list(out["input_ids"])


def check_data(train: Sequence[str | Path], validation: Sequence[str | Path] = (), *,
               tokenizer: Any = None, max_length: int = 2048, assistant_only_loss: bool = False) -> DataReport:
    """Every check the issue asks for. Token statistics only when a tokenizer is given.

    Does not raise for structural problems (call `raise_for_problems`), so a
    `--check-data` run can list them all first.
    """
    report = check_files(train, validation)
    if tokenizer is not None and not report.problem_count:
        add_token_stats(report, tokenizer, max_length, assistant_only_loss=assistant_only_loss)
    return report


def add_token_stats(report: DataReport, tokenizer: Any, max_length: int, *,
                    assistant_only_loss: bool = False) -> DataReport:
    """Fill in token statistics for both sets of an already checked report."""
    report.train_tokens = token_stats(report.train_examples, tokenizer, max_length,
                                      assistant_only_loss=assistant_only_loss)
    if report.validation:
        report.validation_tokens = token_stats(report.validation_examples, tokenizer, max_length,
                                               assistant_only_loss=assistant_only_loss)
    return report


def to_records(examples: Iterable[Example]) -> list[dict[str, list[dict[str, str]]]]:
    """Plain {"messages": [...]} dicts for `datasets.Dataset.from_list`."""
    return [{"messages": [dict(m) for m in ex.messages]} for ex in examples]
