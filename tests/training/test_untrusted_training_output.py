"""`train --output` into a non-empty folder refuses unless `--overwrite`,
and the adapter's README front matter names the base model by id, not by a local cache path.

One real (tiny, CPU) TRL + PEFT run through the CLI is shared by the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from brie_bench.cli import cli
from brie_bench.errors import InputError
from brie_bench.training import config_path, load_config, train

@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_base_path: Path) -> Iterator[Path]:
    """A 2-step adapter of the smoke config (BRIE_BENCH_CACHE points at the session's tiny models)."""
    out = tmp_path_factory.mktemp("trained") / "adapter"
    config = load_config(config_path("smoke"))
    short = config.model_copy(update={"training": config.training.model_copy(update={"max_steps": 2})})
    train(short, out, show_progress=False)
    yield out


def front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:text.index("\n---", 4)])


def test_readme_front_matter_names_the_model_id_not_a_local_path(trained: Path, tiny_base_path: Path) -> None:
    meta = front_matter(trained / "README.md")
    assert meta["base_model"] == "tiny:qwen2"
    whole = (trained / "README.md").read_text(encoding="utf-8")
    assert str(tiny_base_path) not in whole and str(tiny_base_path.parent) not in whole


def test_a_non_empty_output_folder_is_refused_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "tokenizer_config.json").write_text('{"mine": true}', encoding="utf-8")
    result = CliRunner().invoke(cli, ["train", str(config_path("smoke")), "--output", str(out)])
    assert result.exit_code == 2, result.output
    errors = [x for x in result.output.splitlines() if x.startswith("error")]
    assert len(errors) == 1 and "not empty" in errors[0] and "--overwrite" in errors[0], result.output
    assert (out / "tokenizer_config.json").read_text(encoding="utf-8") == '{"mine": true}'


def test_an_output_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(InputError):
        train(load_config(config_path("smoke")), target, show_progress=False)


def test_overwrite_writes_into_a_non_empty_folder(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    out.mkdir()
    (out / "tokenizer_config.json").write_text('{"stale": true}', encoding="utf-8")
    config = load_config(config_path("smoke"))
    short = config.model_copy(update={"training": config.training.model_copy(update={"max_steps": 1})})
    with pytest.raises(InputError, match="not empty"):
        train(short, out, show_progress=False)
    result = train(short, out, show_progress=False, overwrite=True)
    assert result.steps == 1
    assert "stale" not in (out / "tokenizer_config.json").read_text(encoding="utf-8")
    assert front_matter(out / "README.md")["base_model"] == "tiny:qwen2"
