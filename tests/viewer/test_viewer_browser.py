"""The viewer in a real browser (the system Chromium, driven by Playwright) at phone size.

At 390 × 844 the runs list, a run's report and the comparison browser must not
scroll sideways: wide tables scroll inside their own box instead. The filter
form is used as a person would (tick "judges disagree", press Show) and the
resulting URL, opened again, shows the same comparisons. Skips only where no
Chromium is installed; nothing is downloaded.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from helpers import CHROMIUM_MISSING, chromium_path

from test_viewer_server import TOKEN, three_runs, viewer  # noqa: F401 (fixtures)


CHROMIUM = chromium_path()
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason=CHROMIUM_MISSING)


def test_runs_list_run_page_and_browser_fit_a_phone(viewer: int,  # noqa: F811
                                                    three_runs: tuple[Path, list[str]]) -> None:  # noqa: F811
    _, ids = three_runs
    base = f"http://127.0.0.1:{viewer}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
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
