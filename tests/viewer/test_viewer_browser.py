"""The viewer, the static report and the judging page in a real browser (the system Chromium, via Playwright).

`brie-bench view` runs as a user starts it, on a database with three runs of one
suite, one of them also judged by a person in the browser. The test opens the
runs list and a run, the history chart, compares two runs, filters the
comparisons to "judges disagree" and opens the shared URL again to the same
view, and checks that requests without the token are refused. Then, at
390 × 844, the static report, the viewer's pages and the judging page must not
scroll sideways (tables scroll inside their own box), no chart text may be
rendered smaller than 10 px (its computed size times the SVG's on-screen scale),
and the judging counter ("4 / 9 judged") must be whole on screen.

Skips only where no Chromium is installed; nothing is downloaded. With
$BRIE_BENCH_SCREENSHOTS set, the pages are saved there as PNG (docs/img comes
from this).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from brie_bench.web.session import JudgingSession
from helpers import CHROMIUM_MISSING, chromium_path, judging_app_served

from test_viewer_server import TOKEN, three_runs, viewer  # noqa: F401 (fixtures)


CHROMIUM = chromium_path()
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason=CHROMIUM_MISSING)
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 700}

#: The page's width, and the smallest chart text in rendered pixels: computed font size times the SVG's
#: on-screen scale (a chart drawn 440 units wide and shown 300 px wide scales its text by 300/440).
MEASURE = """() => {
  let smallest = null, text = null, count = 0;
  for (const t of document.querySelectorAll('svg text')) {
    if (!t.getClientRects().length) continue;  // not rendered (the other pane of a switch)
    const m = t.ownerSVGElement.getScreenCTM();
    const px = parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
    count += 1;
    if (smallest === null || px < smallest) { smallest = px; text = t.textContent; }
  }
  return {width: document.documentElement.scrollWidth, smallest, text, count};
}"""


def shoot(page: Page, name: str) -> None:
    folder = os.environ.get("BRIE_BENCH_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def fits(page: Page, *, charts: bool) -> dict[str, Any]:
    """Assert the page does not scroll sideways and its chart text is at least 10 px; returns the measure."""
    m: dict[str, Any] = page.evaluate(MEASURE)
    assert m["width"] <= 390, (page.url, m)
    if charts:
        assert m["count"] > 0, page.url
        assert m["smallest"] >= 10.0, (page.url, m)
    return m


def test_runs_list_run_page_and_browser_fit_a_phone(viewer: int,  # noqa: F811
                                                    three_runs: tuple[Path, list[str]]) -> None:  # noqa: F811
    _, ids = three_runs
    base = f"http://127.0.0.1:{viewer}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport=PHONE).new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            widths = {}
            for name, path in (("runs", "/"), ("run", f"/run/{ids[0]}"),
                               ("comparisons", f"/run/{ids[0]}/comparisons")):
                page.goto(f"{base}{path}?token={TOKEN}")
                widths[name] = page.evaluate("document.documentElement.scrollWidth")
            assert all(w <= 390 for w in widths.values()), widths
            assert page.locator("article.cmp").count() > 0
            page.check("input[name=disagree]")
            page.click("#browse-filters button[type=submit]")
            page.wait_for_load_state()
            assert "disagree=1" in page.url and f"token={TOKEN}" in page.url
            first = page.inner_text("#pair-count")
            shown = int(re.match(r"(\d+) of", first).group(1))  # type: ignore[union-attr]
            assert shown == page.locator("article.cmp").count() > 0
            shared = page.url
            page.goto(shared)
            assert page.inner_text("#pair-count") == first
            assert page.locator("input[name=disagree]").is_checked()
            assert not [e for e in errors if "Content Security Policy" in e], errors  # nothing blocked
        finally:
            browser.close()


@pytest.fixture
def view_command(three_runs: tuple[Path, list[str]]) -> Iterator[str]:  # noqa: F811
    """`brie-bench view --port 0` as a user starts it; yields the printed URL (stops by itself too)."""
    db, _ = three_runs
    proc = subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "view", "--port", "0",
                             "--idle-exit", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", url), (url, proc.stderr and proc.stderr.read())
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def test_view_end_to_end_with_a_person_and_every_page_on_a_phone(
        three_runs: tuple[Path, list[str]], view_command: str, tmp_path: Path) -> None:  # noqa: F811
    db, ids = three_runs
    base, token = view_command.split("/?token=")
    report = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "report", ids[0], "--html",
                           str(report)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            phone = browser.new_context(viewport=PHONE).new_page()

            # The judging page at phone width: the counter stays whole after some verdicts.
            session = JudgingSession(str(db), ids[0], "alice")
            try:
                with judging_app_served(session, "judge-token-" + "z" * 20) as jport:
                    judge_url = f"http://127.0.0.1:{jport}/?token=judge-token-{'z' * 20}"
                    for k in range(4):
                        unit = session.next_unit()
                        assert unit is not None
                        pick = session.by_key[unit.key].assignment.label_of("brie" if k % 2 == 0 else "baseline")
                        assert session.record(unit.key, pick, seconds=2.0)
                    phone.goto(judge_url)
                    fits(phone, charts=False)
                    total = session.progress().total
                    counter = phone.locator("#progress-text")
                    assert counter.inner_text() == f"4 / {total} judged"
                    box = counter.bounding_box()
                    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
                    assert counter.evaluate("e => e.scrollWidth <= e.clientWidth + 1")  # not clipped
                    shoot(phone, "judging-phone")
                while (unit := session.next_unit()) is not None:  # alice finishes: she is a judge of the run
                    assert session.record(unit.key, session.by_key[unit.key].assignment.label_of("brie"))
            finally:
                session.close()

            # Desktop: list, run, history, compare, browser, as a user clicks through them.
            desk = browser.new_context(viewport=DESKTOP).new_page()
            desk.goto(view_command)
            assert desk.locator("tr.run").count() == 3
            shoot(desk, "viewer-runs-desktop")
            desk.click(f'tr.run[data-run="{ids[0]}"] a')
            assert desk.locator("#headline-table").count() == 1 and f"/run/{ids[0]}" in desk.url
            assert desk.locator('svg[data-chart="bars"]').count() >= 1
            heat = desk.locator('svg[data-chart="heatmap"]').first
            assert "alice (person)" in heat.inner_html()  # people are in the agreement heatmap
            desk.locator('#agreement label:has-text("percent agreement")').first.click()
            assert desk.locator("#agreement .pane-p").first.is_visible()
            assert not desk.locator("#agreement .pane-k").first.is_visible()
            desk.evaluate("document.querySelector('#sections').scrollIntoView()")
            shoot(desk, "viewer-run-desktop")

            desk.goto(view_command)
            desk.click("#history-links a")
            assert "/history" in desk.url
            history = desk.locator('svg[data-chart="history"]')
            assert history.count() == 1 and history.locator("polyline").count() >= 1
            assert desk.locator("#history-runs tr.run").count() == 3
            shoot(desk, "viewer-history-desktop")

            desk.goto(view_command)
            desk.select_option("#compare-form select[name=a]", ids[1])
            desk.select_option("#compare-form select[name=b]", ids[0])
            desk.click("#compare-form button[type=submit]")
            assert f"a={ids[1]}" in desk.url and f"b={ids[0]}" in desk.url
            diffs = desk.locator("#compare-table td.diff").all_inner_texts()
            assert diffs and all("pts" in d for d in diffs)
            shoot(desk, "viewer-compare-desktop")

            desk.goto(f"{base}/run/{ids[0]}/comparisons?token={token}")
            desk.check("input[name=disagree]")
            desk.click("#browse-filters button[type=submit]")
            assert "disagree=1" in desk.url
            count = desk.inner_text("#pair-count")
            assert int(count.split()[0]) == desk.locator("article.cmp").count() > 0
            desk.goto(desk.url)  # the shared link, opened again
            assert desk.inner_text("#pair-count") == count and desk.locator("input[name=disagree]").is_checked()

            # Without the token (or with a wrong one) nothing is served.
            for path in ("/", f"/run/{ids[0]}", "/history", f"/compare?a={ids[0]}&b={ids[1]}"):
                assert desk.request.get(f"{base}{path}").status == 403, path
                sep = "&" if "?" in path else "?"
                assert desk.request.get(f"{base}{path}{sep}token=wrong-{token}").status == 403, path

            # Phone: every page fits, chart text included.
            phone.goto(report.as_uri())
            m = fits(phone, charts=True)
            assert m["count"] > 20  # headline, sections, agreement, bias and length charts
            for name, path, charts in (("runs", "/", False), ("run", f"/run/{ids[0]}", True),
                                       ("history", "/history", True), ("compare", f"/compare?a={ids[1]}&b={ids[0]}",
                                                                       True),
                                       ("comparisons", f"/run/{ids[0]}/comparisons", False)):
                sep = "&" if "?" in path else "?"
                phone.goto(f"{base}{path}{sep}token={token}")
                fits(phone, charts=charts)
                if name == "run":
                    phone.evaluate("document.querySelector('#sections').scrollIntoView()")
                shoot(phone, f"viewer-{name}-phone")
        finally:
            browser.close()
