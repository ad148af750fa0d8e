"""A person judges the smoke run in a real browser (Debian's Chromium, driven by Playwright).

The person always picks the fine-tune's answer, which the test knows from the
store (every fine-tune answer is laced with hostile markup, so its text tells
it apart). They use only the keyboard, press a wrong key once and undo it,
reload the page mid-way, close the tab and come back. Afterwards the stored
verdicts must give the fine-tune a 100% win rate under both assignments, no
script from an answer may have run, and a request without the token must be
refused. Screenshots land in $BRIE_BENCH_SCREENSHOTS (else the test's tmp dir).

Playwright launches the system Chromium through `executable_path`: nothing is
downloaded. The test skips only where no Chromium is installed.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, sync_playwright

from brie_bench.report import build_report
from brie_bench.store import Store
from brie_bench.web.app import shown
from helpers import CHROMIUM_MISSING, chromium_path, run_smoke_cli

REPO = Path(__file__).parents[2]
#: Markup, a textarea breakout, template syntax and a bidi override: all must stay text.
PAYLOAD = ("<script>document.title='pwned';document.documentElement.setAttribute('data-pwned','1')</script>"
           "</textarea><img src=x onerror=\"document.documentElement.setAttribute('data-pwned','2')\"> "
           "{{ 7*7 }} {% if 1 %}x{% endif %} \u202edesrever\u202c ")
MEGABYTE = "\n" + "All work and no play. " * 47_700  # about 1 MB


CHROMIUM = chromium_path()
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason=CHROMIUM_MISSING)


@pytest.fixture(scope="module")
def smoke_db(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path, tiny_base_path: Path,
             tiny_adapter_path: Path, tiny_judge_path: Path) -> tuple[Path, str, set[str], set[str]]:
    """The smoke run, with every fine-tune answer laced with PAYLOAD and one baseline answer a megabyte long."""
    tmp = tmp_path_factory.mktemp("web-judge")
    db = tmp / "smoke.db"
    run_smoke_cli(db, tiny_cache)
    conn = sqlite3.connect(db)
    with conn:
        run_id = conn.execute("SELECT id FROM runs").fetchone()[0]
        conn.execute("UPDATE generations SET text = ? || text WHERE key IN "
                     "(SELECT gen_key FROM run_generations WHERE contender='brie')", (PAYLOAD,))
        conn.execute("UPDATE generations SET text = text || ? WHERE key = (SELECT MIN(gen_key) FROM run_generations "
                     "WHERE contender='baseline')", (MEGABYTE,))
        texts: dict[str, set[str]] = {"brie": set(), "baseline": set()}
        for contender, text in conn.execute("SELECT rg.contender, g.text FROM run_generations rg "
                                            "JOIN generations g ON g.key = rg.gen_key"):
            texts[contender].add(text)
    conn.close()
    assert not texts["brie"] & texts["baseline"]
    return db, run_id, texts["brie"], texts["baseline"]


@pytest.fixture
def judge_server(smoke_db) -> Iterator[str]:
    """`brie-bench judge RUN --web --name alice --port 0`; yields the printed URL; stopped at the end.

    --idle-exit makes it stop by itself too, should the test process die first.
    """
    db, run_id, _, _ = smoke_db
    proc = subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "judge", run_id, "--web",
                             "--name", "alice", "--port", "0", "--idle-exit", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.poll() is not None else "")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def shots_dir(tmp_path: Path) -> Path:
    out = Path(os.environ.get("BRIE_BENCH_SCREENSHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def state(page: Page) -> tuple[str, str]:
    """(comparison key, progress text) of the page on screen."""
    return page.locator("input[name=unit]").get_attribute("value") or "", page.inner_text("#progress-text")


def press(page: Page, key: str) -> None:
    with page.expect_navigation():
        page.keyboard.press(key)


def assert_inert(page: Page) -> None:
    """Nothing from an answer ran or became an element."""
    assert page.evaluate("document.documentElement.getAttribute('data-pwned')") is None
    assert "pwned" not in page.title()
    assert page.locator("main script, main img, main textarea").count() == 0


def fine_tune_key(page: Page, brie: set[str], baseline: set[str], n: int) -> str:
    """The key a person who always prefers the fine-tune presses (letters and arrows in turn)."""
    a = page.locator("#answer-a").text_content()
    b = page.locator("#answer-b").text_content()
    shown_brie, shown_base = {shown(t) for t in brie}, {shown(t) for t in baseline}
    if a in shown_brie and b in shown_base:
        return "a" if n % 2 else "ArrowLeft"
    assert b in shown_brie and a in shown_base, "the page shows answers that are not this comparison's"
    return "b" if n % 2 else "ArrowRight"


def test_a_person_judges_the_smoke_run_with_the_keyboard(smoke_db, judge_server: str, tmp_path: Path) -> None:
    db, run_id, brie, baseline = smoke_db
    shots = shots_dir(tmp_path)
    parts = urlsplit(judge_server)
    bare = f"{parts.scheme}://{parts.netloc}/"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bare, timeout=30)
    assert refused.value.code == 403

    console_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        assert page.goto(bare).status == 403  # the browser without the token is refused too
        console_errors.clear()  # that refusal is the one expected error
        page.goto(judge_server)
        assert page.inner_text("#progress-text") == "0 / 9 judged"
        page.screenshot(path=str(shots / "web-judge-first.png"))
        judged, seen_megabyte = 0, False
        while page.locator("#done").count() == 0:
            assert_inert(page)
            key, progress = state(page)
            assert progress == f"{judged} / 9 judged"
            text_a = page.locator("#answer-a").text_content() or ""
            text_b = page.locator("#answer-b").text_content() or ""
            seen_megabyte = seen_megabyte or max(len(text_a), len(text_b)) > 1_000_000
            assert "<script>document.title='pwned'" in text_a + text_b and "{{ 7*7 }}" in text_a + text_b
            assert "\u202e" not in text_a + text_b and "\\u202edesrever\\u202c" in text_a + text_b
            if judged == 1:  # a slip of the finger, then undo: the same comparison comes back
                press(page, "t")
                assert page.inner_text("#progress-text") == "2 / 9 judged" and "a tie" in page.inner_text("#notice")
                page.screenshot(path=str(shots / "web-judge-recorded.png"))
                press(page, "u")
                assert state(page) == (key, "1 / 9 judged") and "Took back" in page.inner_text("#notice")
            if judged == 3:  # reload mid-way: same comparison, same progress, and no stale notice
                page.reload()
                assert state(page) == (key, progress) and page.locator("#notice").count() == 0
            if judged == 5:  # close the tab and come back later
                page.close()
                page = context.new_page()
                page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
                page.goto(judge_server)
                assert state(page) == (key, progress)
            press(page, fine_tune_key(page, brie, baseline, judged))
            judged += 1
        page.screenshot(path=str(shots / "web-judge-done.png"))
        assert page.inner_text("#progress-text") == "9 / 9 judged"
        assert page.inner_text("#tally-decided") == "9"
        assert not re.search(r"\b(brie|baseline)\b(?!-bench)", page.content())  # still blind at the end
        assert_inert(page)
        browser.close()
    assert seen_megabyte
    assert console_errors == []  # no CSP violation: nothing tried to run

    with Store(db, readonly=True) as store:
        stored = [r for r in store.judgments(run_id) if r.judge == "alice"]
        report = build_report(store, run_id).to_json_dict()
    assert len(stored) == 9 and {r.winner for r in stored} == {"brie"}
    assert {r.label_a for r in stored} == {"brie", "baseline"}  # both assignments were shown
    (alice,) = [j for j in report["judges"] if j["judge"] == "alice"]
    assert alice["win_rate"] == 1.0 and alice["judge_type"] == "human"
    (agreement,) = report["agreement"]
    (pair,) = agreement["human_llm"]
    assert pair["human"] == "alice" and pair["judge"] == "tiny-judge" and pair["n"] == 6
