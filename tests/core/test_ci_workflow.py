"""The GitHub Actions workflow of docs/ci.md, its commands run against the smoke suite.

The workflow is read from the document itself, so the test fails when the document's
commands stop working. Every step that calls Brie Bench runs as GitHub runs it (bash,
the workflow's `env`, the repository's own folders replaced by the smoke suite, the smoke
training config and a tiny served judge), and each exit code is checked: train, run and
report succeed; the gate exits 3, because the smoke suite's tiny judge follows the label
of the answers, so the data cannot decide.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).parents[2]
#: Exit code each Brie Bench step of the workflow must give on the smoke suite, by step name.
EXPECTED = {"Train the adapter": 0, "Run the suite": 0, "Gate": 3, "HTML report": 0}


def workflow() -> dict:
    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    return yaml.safe_load(block)


def test_the_workflow_is_complete() -> None:
    """Install, adapter (cache, else train), run, gate with both CI outputs, and the report as an artefact."""
    flow = workflow()
    steps = flow["jobs"]["evaluate"]["steps"]
    names = [s.get("name") or s.get("uses") for s in steps]
    assert names[:2] == ["actions/checkout@v4", "actions/setup-python@v5"]
    assert [n for n in names if n in EXPECTED] == list(EXPECTED)
    runs = {s.get("name"): s.get("run", "") for s in steps}
    assert "pip install" in runs["Install"] and "brie-bench train" in runs["Train the adapter"]
    assert "--summary \"$GITHUB_STEP_SUMMARY\"" in runs["Gate"] and "--junit" in runs["Gate"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and "reports/" in upload["with"]["path"]
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))
    assert cache["id"] == "adapter" and "steps.adapter.outputs.cache-hit" in next(
        s for s in steps if s.get("name") == "Train the adapter")["if"]


@pytest.mark.slow  # trains the smoke adapter and starts a served judge: about a minute on 2 cores
def test_the_workflow_commands_on_the_smoke_suite(tmp_path: Path, tiny_cache: Path, tiny_base_path: Path,
                                                  tiny_adapter_path: Path, tiny_judge_path: Path) -> None:
    flow = workflow()
    env = {**os.environ, **{k: str(v) for k, v in flow["env"].items()},
           "TRAIN_CONFIG": str(REPO / "training" / "configs" / "smoke.yaml"),
           "ADAPTER_DIR": str(tmp_path / "adapter"),
           "SUITE": str(REPO / "suites" / "smoke.yaml"),
           "SERVED_JUDGE": "tiny:qwen2-judge",
           "BRIE_BENCH_DB": str(tmp_path / "brie-bench.db"),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "step-summary.md"),
           "BRIE_BENCH_CACHE": str(tiny_cache), "COLUMNS": "200",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    ran = {}
    for step in flow["jobs"]["evaluate"]["steps"]:
        script = step.get("run", "")
        if "brie-bench" not in script and "brie_bench" not in script:
            continue
        done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        ran[step["name"]] = done.returncode
        assert done.returncode == EXPECTED[step["name"]], f"{step['name']}: {done.stdout}\n{done.stderr}"
        if step["name"] == "Gate":
            assert "gate cannot decide (exit 3)" in done.stdout
    assert ran == EXPECTED
    assert (tmp_path / "adapter" / "brie_manifest.json").exists()
    summary = (tmp_path / "step-summary.md").read_text(encoding="utf-8")
    assert summary.startswith("## ⚠️ Brie Bench gate cannot decide (exit 3)") and "no conclusion follows" in summary
    (case,) = ET.parse(tmp_path / "reports" / "gate.xml").getroot().iter("testcase")
    assert case.find("skipped") is not None
    page = (tmp_path / "reports" / "report.html").read_text(encoding="utf-8")
    assert '<section id="verdict"' in page and "so no conclusion follows from it" in page
