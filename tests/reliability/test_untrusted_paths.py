"""Every path option of a suite stays inside the suite's folder.

A suite from someone else named `template: ../../outside.txt` (or `~/.ssh/id_rsa`)
for the llm judge, and the file's content went to the judge's endpoint. Path
options are now declared with `suite_path_field` in a plugin's option schema and
confined by the suite loader in one place, exactly like `prompts_file`; the
llm judge's `template` is one of them, and so is any third-party plugin's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from brie_bench.cli import cli
from brie_bench.api import JudgeContext
from brie_bench.bounded import is_suite_path
from brie_bench.errors import InputError
from hostile.kit import loopback, loopback_suite, model_calls, write_suite
from plugins.llm_judge import LLMJudge, LLMJudgeOptions

SECRET = "PRIVATE-KEY-MATERIAL-do-not-send-4e1f"
TEMPLATE = "Compare.\n{{ prompt }}\n<response_a>{{ answer_a }}</response_a>\n<response_b>{{ answer_b }}</response_b>\n"


def validate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", *args], env={"COLUMNS": "300"})
    return result.exit_code, result.output


def suite_with_template(tmp_path: Path, template: str, *, srv=None) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir(exist_ok=True)
    with (loopback() if srv is None else _same(srv)) as server:
        data = loopback_suite(server, prompts=2)
        data["judges"]["judge"]["options"]["template"] = template
    return write_suite(folder / "suite.yaml", data)


class _same:
    def __init__(self, srv) -> None:
        self.srv = srv

    def __enter__(self):
        return self.srv

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside.txt"
    path.write_text(SECRET + "\n{{ prompt }} {{ answer_a }} {{ answer_b }}", encoding="utf-8")
    return path


def test_template_option_is_declared_as_a_suite_path() -> None:
    assert is_suite_path(LLMJudgeOptions.model_fields["template"])


@pytest.mark.parametrize("spelling", ["../outside.txt", "../suite/../outside.txt", "ABSOLUTE", "LINK"])
def test_template_outside_the_suite_folder_is_refused(tmp_path: Path, outside: Path, spelling: str) -> None:
    if spelling == "ABSOLUTE":
        spelling = str(outside)
    suite = suite_with_template(tmp_path, "placeholder")
    if spelling == "LINK":  # a symlink inside the folder that points out of it
        (suite.parent / "t.j2").symlink_to(outside)
        spelling = "t.j2"
    suite.write_text(suite.read_text().replace("placeholder", spelling), encoding="utf-8")
    code, out = validate(str(suite))
    assert code == 2, out
    assert out.count("error:") == 1 and "Traceback" not in out
    assert "judges.judge.options.template" in out and "outside the suite's folder" in out, out
    assert SECRET not in out


def test_template_in_the_home_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(SECRET, encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    suite = suite_with_template(tmp_path, "~/.ssh/id_rsa")
    code, out = validate(str(suite))
    assert code == 2 and "judges.judge.options.template" in out and "home folder" in out, out


def test_template_inside_the_folder_is_used(tmp_path: Path) -> None:
    suite = suite_with_template(tmp_path, "templates/judge.j2")
    (suite.parent / "templates").mkdir()
    (suite.parent / "templates" / "judge.j2").write_text(TEMPLATE, encoding="utf-8")
    code, out = validate(str(suite))
    assert code == 0, out
    missing = suite_with_template(tmp_path, "templates/nope.j2")
    code, out = validate(str(missing))
    assert code == 2 and "not found" in out and "judges.judge.options.template" in out, out


def test_outside_template_never_reaches_the_judge_endpoint(tmp_path: Path, outside: Path) -> None:
    with loopback() as srv:
        suite = suite_with_template(tmp_path, "../outside.txt", srv=srv)
        result = CliRunner().invoke(cli, ["--db", str(tmp_path / "r.db"), "run", str(suite)])
        assert result.exit_code == 2, result.output
        assert model_calls(srv) == []
        assert not any(SECRET.encode() in r.body for r in srv.requests)


def test_the_judge_itself_confines_its_template_to_base_dir(tmp_path: Path, outside: Path) -> None:
    """Defence in depth: built without the suite loader, the judge still refuses a path out of its folder."""
    folder = tmp_path / "suite"
    folder.mkdir()
    with pytest.raises(InputError, match="outside the suite's folder"):
        LLMJudge(LLMJudgeOptions(template="../outside.txt"), None, JudgeContext("j", base_dir=str(folder)))


PLUGIN = '''
from typing import Any, ClassVar
from brie_bench.api import Judge, JudgeOptions, JudgeResult, hookimpl
from brie_bench.bounded import suite_path_field


class RubricOptions(JudgeOptions):
    rubric: str = suite_path_field(..., description="rubric file next to the suite")
    extra: list[str] = suite_path_field(default_factory=list, description="more files")


class RubricJudge(Judge):
    name: ClassVar[str] = "rubric-test"
    Options: ClassVar[type] = RubricOptions
    needs_backend: ClassVar[bool] = False

    async def judge(self, pair: Any) -> JudgeResult:
        return JudgeResult("tie", raw="tie")


@hookimpl
def register_judges(register: Any) -> None:
    register(RubricJudge)
'''


@pytest.mark.parametrize("rubric, extra, ok, where", [
    ("rubric.yaml", ["more.yaml"], True, None),
    ("../outside.txt", [], False, "judges.rubric.options.rubric"),
    ("rubric.yaml", ["more.yaml", "../outside.txt"], False, "judges.rubric.options.extra[1]"),
])
def test_third_party_path_options_are_confined_by_the_same_rule(tmp_path: Path, outside: Path, rubric: str,
                                                               extra: list[str], ok: bool, where: str | None) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "rubric_test.py").write_text(PLUGIN, encoding="utf-8")
    suite = suite_with_template(tmp_path, "x")
    data = yaml.safe_load(suite.read_text())
    data["judges"] = {"rubric": {"type": "rubric-test", "options": {"rubric": rubric, "extra": extra}}}
    write_suite(suite, data)
    (suite.parent / "rubric.yaml").write_text("a: 1\n", encoding="utf-8")
    (suite.parent / "more.yaml").write_text("a: 1\n", encoding="utf-8")
    code, out = validate("--plugins-dir", str(plugins), str(suite))
    if ok:
        assert code == 0, out
    else:
        assert code == 2 and where in out and "outside the suite's folder" in out, out
