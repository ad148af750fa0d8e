"""Every shipped suite validates; every bad suite fails with one line, exit code 2, and the expected fragment."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from brie_bench.cli import cli
from brie_bench.suite import load_suite

REPO = Path(__file__).parents[2]
SHIPPED = sorted((REPO / "suites").glob("*.yaml"))
BAD = sorted((Path(__file__).parents[1] / "bad_suites").glob("*.yaml"))


def test_there_are_enough_fixtures():
    assert len(SHIPPED) >= 9
    assert len(BAD) >= 30


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_suite_validates(path):
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")


def test_multi_domain_has_the_original_structure():
    suite = load_suite(REPO / "suites" / "multi_domain.yaml")
    sizes = {s.name: len(s.prompts) for s in suite.sections}
    assert sum(sizes.values()) == 42
    assert set(suite.spec.judges) == {"claude", "gpt4o", "gemini"}
    assert suite.spec.defaults.temperature == 0.75 and suite.spec.defaults.max_tokens == 512
    adapters = [c.options.get("adapter") for c in suite.spec.contenders.values()]
    assert adapters.count(None) == 1


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_suite_fails_cleanly(path):
    first = path.read_text(encoding="utf-8", errors="replace").splitlines()[0]
    assert first.startswith("# expect: "), "bad suites declare the expected error fragment on line 1"
    fragment = first[len("# expect: "):].strip()
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1, result.output
    message = lines[0].replace(str(path), "<suite>")
    assert message.startswith("error: ")
    assert fragment in message, f"{fragment!r} not in {message!r}"
