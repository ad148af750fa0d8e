"""docs/writing-a-plugin.md, followed literally: every file it shows is written, every command it shows is run.

Files are the fenced blocks whose first line is `# file: PATH`; commands are the `$ ` lines of
``console`` blocks, run in document order in an empty folder. Three translations only:
`brie-bench` and `pytest` run with this interpreter, and `pip install .` installs into a
private folder (no network, no dependencies) instead of site-packages.
"""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path


DOC = Path(__file__).parents[2] / "docs" / "writing-a-plugin.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
FILE_LINE = re.compile(r"^# file: (\S+)\n")


def doc_steps() -> list[tuple[str, str, str]]:
    """("file", path, text) and ("command", line, "") in document order."""
    steps: list[tuple[str, str, str]] = []
    for lang, body in BLOCK.findall(DOC.read_text(encoding="utf-8")):
        if lang == "console":
            steps += [("command", line[2:].strip(), "") for line in body.splitlines() if line.startswith("$ ")]
            continue
        match = FILE_LINE.match(body)
        if match:
            steps.append(("file", match.group(1), body))
    return steps


def translate(command: str, site: Path) -> list[str]:
    argv = shlex.split(command)
    if argv[0] == "brie-bench":
        return [sys.executable, "-m", "brie_bench", *argv[1:]]
    if argv[0] == "pytest":
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *argv[1:]]
    if argv[:2] == ["pip", "install"]:
        return [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                "--disable-pip-version-check", "--target", str(site), *argv[2:]]
    raise AssertionError(f"the doc shows a command this test does not know how to run: {command}")


def test_doc_shows_the_pieces() -> None:
    steps = doc_steps()
    files = [s[1] for s in steps if s[0] == "file"]
    commands = [s[1] for s in steps if s[0] == "command"]
    assert files == ["my_plugins/one_word_judge.py", "suite.yaml", "tests/test_one_word_judge.py", "pyproject.toml",
                     "my_plugins/echo_backend.py", "tests/test_echo_backend.py"]
    assert any(c.startswith("brie-bench --plugins-dir my_plugins run") for c in commands)
    text = DOC.read_text(encoding="utf-8")
    for topic in ("register_judges", "register_backends", "BlindedPair", "JudgeResult", "invalid_reason",
                  "TransientError", "[project.entry-points.brie_bench]", "--plugins-dir", "JudgeContract"):
        assert topic in text, topic


def test_pyproject_in_the_doc_declares_the_entry_point() -> None:
    body = next(text for kind, path, text in doc_steps() if path == "pyproject.toml")
    data = tomllib.loads(body)
    assert data["project"]["entry-points"]["brie_bench"] == {"one-word": "one_word_judge"}


def test_following_the_doc_literally(tmp_path: Path, tiny_cache: Path, tiny_base_path: Path,
                                     tiny_adapter_path: Path, tiny_judge_path: Path) -> None:
    work, site = tmp_path / "project", tmp_path / "site"
    work.mkdir()
    site.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), BRIE_BENCH_CACHE=str(tiny_cache), COLUMNS="200",
               HF_HUB_OFFLINE="1")
    outputs: dict[str, str] = {}
    for kind, what, body in doc_steps():
        if kind == "file":
            path = work / what
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
            continue
        result = subprocess.run(translate(what, site), cwd=work, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, f"$ {what}\n{result.stdout}\n{result.stderr}"
        outputs[what] = " ".join(result.stdout.split())

    # Discovered from the folder, with its options.
    listing = outputs["brie-bench --plugins-dir my_plugins plugins --verbose"]
    assert "one-word" in listing and "file " in listing and "max_tokens" in listing
    # Ran in the suite: two prompts in both orders, judged by the new judge over labels only.
    conn = sqlite3.connect(work / "brie-bench.db")
    try:
        got = conn.execute("SELECT judge_type, verdict, invalid_reason FROM judgments").fetchall()
    finally:
        conn.close()
    assert len(got) == 4 and {r[0] for r in got} == {"one-word"}
    assert all(r[1] in ("A", "B", "tie") or (r[1] == "invalid" and r[2]) for r in got)
    # Passed the contract kit, judge and backend.
    for command in ("pytest tests/test_one_word_judge.py", "pytest tests/test_echo_backend.py"):
        assert re.search(r"\d+ passed", outputs[command]) and "failed" not in outputs[command], outputs[command]
    # Packaged: found through its entry point, without --plugins-dir.
    assert "entry point one-word (brie-bench-one-word)" in outputs["brie-bench plugins"]
