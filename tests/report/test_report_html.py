"""The HTML report of the offline smoke run, opened in headless Chromium after its script ran.

Model output is untrusted: the smoke run's stored answers, prompt and judge
answer are laced with script, HTML and template syntax before the report is
written, and the test checks that none of it ran, that it shows as text, that
the charts are there and that the comparison list paginates.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import CHROMIUM_MISSING, chromium_path, run_smoke_cli

REPO = Path(__file__).parents[2]

ANSWER_PAYLOAD = "<script>document.title='pwned';document.documentElement.setAttribute('data-pwned','1')</script>"
IMG_PAYLOAD = "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','2')\">"
PROMPT_PAYLOAD = "</script><script>document.documentElement.setAttribute('data-pwned','3')</script> {{ 7*7 }}"
RAW_PAYLOAD = "{% raw %}{{ config }}{% endraw %}<svg onload=\"document.documentElement.setAttribute('data-pwned','4')\">"


CHROMIUM = chromium_path()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason=CHROMIUM_MISSING)


def dump_dom(page: Path, fragment: str, profile: Path) -> str:
    """The DOM after the page's script ran (`--dump-dom` with a virtual-time budget)."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
            page.resolve().as_uri() + (f"#{fragment}" if fragment else "")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _listing(dom: str) -> str:
    """The rendered comparison list only (not the script that follows it)."""
    return dom.split('id="comparison-list"', 1)[1].split('<script type="application/json"', 1)[0]


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path, tiny_base_path: Path,
                 tiny_adapter_path: Path, tiny_judge_path: Path) -> tuple[Path, str]:
    """Run the smoke suite through the CLI, lace its stored texts with payloads, write the HTML report."""
    tmp = tmp_path_factory.mktemp("smoke-html")
    db = tmp / "smoke.db"
    run_smoke_cli(db, tiny_cache)
    conn = sqlite3.connect(db)
    with conn:
        run_id, snapshot = conn.execute("SELECT id, suite_snapshot FROM runs").fetchone()
        conn.execute("UPDATE generations SET text = text || ? WHERE key IN "
                     "(SELECT gen_key FROM run_generations WHERE contender='brie')", (" " + ANSWER_PAYLOAD,))
        conn.execute("UPDATE generations SET text = ? || text WHERE key IN "
                     "(SELECT gen_key FROM run_generations WHERE contender='baseline')", (IMG_PAYLOAD + " ",))
        conn.execute("UPDATE judgments SET raw = raw || ?", (RAW_PAYLOAD,))
        snap = json.loads(snapshot)
        snap["sections"][0]["prompts"][0]["text"] += PROMPT_PAYLOAD
        conn.execute("UPDATE runs SET suite_snapshot=?", (json.dumps(snap),))
        n_judgments = conn.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
    conn.close()
    assert n_judgments == 9
    env = dict(os.environ, BRIE_BENCH_CACHE=str(tiny_cache), COLUMNS="200")
    report = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "report", "--html"],
                            capture_output=True, text=True, env=env, timeout=120, cwd=tmp)
    assert report.returncode == 0, report.stdout + report.stderr
    path = tmp / "reports" / f"{run_id}.html"
    assert path.exists(), report.stderr
    return path, run_id


def test_smoke_report_file_is_self_contained_and_escaped(smoke_report):
    path, run_id = smoke_report
    html = path.read_text(encoding="utf-8")
    assert run_id in html
    for payload in (ANSWER_PAYLOAD, IMG_PAYLOAD, PROMPT_PAYLOAD, RAW_PAYLOAD):
        assert payload not in html  # only ever escaped
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "clustered by prompt" in html and "effective number of judgments" in html
    assert "cannot be trusted" in html  # each smoke section has only three prompts
    assert "kappa paradox" in html.lower()


@needs_chromium
def test_no_script_from_an_answer_runs_and_charts_render(smoke_report, tmp_path):
    path, run_id = smoke_report
    dom = dump_dom(path, "per=50", tmp_path / "profile")
    html_tag = re.search(r"<html[^>]*>", dom).group(0)
    assert "data-pwned" not in html_tag, "a script or handler from the run's data executed"
    title = re.search(r"<title>(.*?)</title>", dom, flags=re.S).group(1)
    assert title.startswith("Brie Bench report:") and "pwned" not in title
    # Our own script did run (it drew the list) ...
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-page="1"' in body and 'data-pages="1"' in body and 'data-shown="6"' in body
    # ... and the payloads are shown as text, template syntax included.
    assert "&lt;script&gt;document.title='pwned'" in dom
    assert "&lt;img src=x onerror=" in dom
    assert "&lt;/script&gt;&lt;script&gt;" in dom and "{{ 7*7 }}" in dom
    assert "{% raw %}{{ config }}{% endraw %}&lt;svg onload=" in dom
    assert "<img src=\"x\"" not in dom and "<img src=x" not in dom
    # Charts: inline SVG with a point per judge.
    assert len(re.findall(r'<svg class="chart"', dom)) >= 4
    assert len(re.findall(r'<circle [^>]*class="est', dom)) >= 3


@needs_chromium
def test_comparison_list_paginates(smoke_report, tmp_path):
    path, _ = smoke_report
    dom = dump_dom(path, "page=2&per=2", tmp_path / "profile")
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-page="2"' in body and 'data-pages="3"' in body and 'data-shown="2"' in body
    shown = re.findall(r'<article class="cmp" id="cmp-(\d+)"', dom)
    assert shown == ["3", "4"]
    assert "page 2 of 3 · 6 comparisons" in dom
    # Blind by default: no contender name next to an answer until the reader unblinds.
    assert "(candidate)" not in _listing(dom)
    unblinded = dump_dom(path, "page=1&per=6&unblind=1", tmp_path / "profile2")
    listing = _listing(unblinded)
    assert listing.count("brie (candidate)") >= 6 and listing.count("baseline (baseline)") >= 6
    # The both-orders section lists both judgments of each pair under one comparison.
    assert len(re.findall(r'<article class="cmp"', listing)) == 6
