"""`brie-bench view` over real HTTP on 127.0.0.1: runs list and filters, run page, run against run, browser, guard.

The database holds three runs of one scripted suite judged by two judges that
disagree on purpose (`marker` picks the fine-tune, `fixed` always says A), so
the "judges disagree" filter has something to find; the third run is judged by
`marker` alone, so the judge filter has something to drop.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from brie_bench.store import Store
from brie_bench.viewer.app import create_viewer_app
from brie_bench.viewer.data import BrowseFilter, browse, pairs, read_filter
from helpers import app_served, run_suite, scripted_suite, write_yaml

TOKEN = "viewer-token-" + "y" * 20


def _suite(judges: dict) -> dict:
    return scripted_suite(judges=judges, sections=[
        {"name": "philosophy", "prompts": [f"What is being number {i}?" for i in range(4)]},
        {"name": "brainstorm", "prompts": [f"Ideas for thing {i}" for i in range(3)], "orders": "both"}])


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Three runs of the suite `scripted`: two judged by marker and fixed, the last by marker alone."""
    tmp = tmp_path_factory.mktemp("viewer")
    db = tmp / "v.db"
    both = write_yaml(tmp / "both.yaml", _suite({"marker": {"type": "marker"}, "fixed": {"type": "fixed"}}))
    one = write_yaml(tmp / "one.yaml", _suite({"marker": {"type": "marker"}}))
    for path in (both, both, one):
        assert run_suite(path, db, new_run=True) == 0
    with Store(db, readonly=True) as store:
        ids = [r.id for r in store.runs()]
    assert len(ids) == 3
    return db, ids


@pytest.fixture(scope="module")
def viewer(three_runs: tuple[Path, list[str]]) -> Iterator[int]:
    """The viewer app on a free loopback port, in a thread; yields the port."""
    db, _ = three_runs
    with app_served(lambda hosts: create_viewer_app(str(db), token=TOKEN, allowed_hosts=hosts),
                    extra_hosts=("localhost",), lifespan="off") as port:
        yield port


def get(port: int, path: str, *, token: str | None = TOKEN, headers: dict[str, str] | None = None,
        method: str = "GET", **params: str) -> tuple[int, dict[str, str], str]:
    query = urlencode({**({"token": token} if token is not None else {}), **params})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, f"{path}?{query}", headers=headers or {})
    resp = conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text


def listed_runs(html: str) -> list[str]:
    return re.findall(r'<tr class="run" data-run="([^"]+)"', html)


def test_runs_list_shows_every_run_with_verdict_and_headline_and_filters(
        viewer: int, three_runs: tuple[Path, list[str]]) -> None:
    _, ids = three_runs
    status, headers, html = get(viewer, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert sorted(listed_runs(html)) == sorted(ids)
    assert "script-src 'none'" in headers["content-security-policy"]
    assert html.count("brie (candidate") == 3 and "baseline (baseline" in html
    assert 'class="verdict">' in html and re.search(r"marker: <svg class=\"mini\"", html)
    assert re.search(r"\d+\.\d% \[\d+\.\d%, \d+\.\d%\]", html)  # a headline with its interval
    assert listed_runs(get(viewer, "/", judge="fixed")[2]) == [ids[1], ids[0]]  # newest first
    assert sorted(listed_runs(get(viewer, "/", judge="marker")[2])) == sorted(ids)
    assert sorted(listed_runs(get(viewer, "/", suite="scripted", contender="brie")[2])) == sorted(ids)
    assert listed_runs(get(viewer, "/", suite="other")[2]) == []
    assert listed_runs(get(viewer, "/", contender="nobody")[2]) == []


def test_run_page_is_the_live_report_under_its_own_policy(viewer: int, three_runs: tuple[Path, list[str]]) -> None:
    _, ids = three_runs
    status, headers, html = get(viewer, f"/run/{ids[0]}")
    assert status == 200
    assert "Brie Bench report: scripted" in html and 'id="headline-table"' in html and 'id="viewer-nav"' in html
    policy = headers["content-security-policy"]
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+';", policy) and "connect-src 'none'" in policy
    assert f"token={TOKEN}" in html  # its links back into the viewer carry the token
    assert get(viewer, "/run/nope")[0] == 404


def test_compare_two_runs_in_points(viewer: int, three_runs: tuple[Path, list[str]]) -> None:
    _, ids = three_runs
    status, _, html = get(viewer, "/compare", a=ids[0], b=ids[2])
    assert status == 200
    assert ids[0] in html and ids[2] in html
    diffs = re.findall(r'<td class="diff">([^<]*)</td>', html)
    assert diffs and all(d.count(" pts") == 3 for d in diffs), diffs  # one unit: points, estimate and bounds
    assert "judged in only one run" in html  # fixed judged run A only
    assert "<svg class=\"chart\"" in html
    assert get(viewer, "/compare", a=ids[0])[0] == 400


def test_browser_filters_live_in_the_url_and_reproduce_the_view(viewer: int,
                                                                three_runs: tuple[Path, list[str]]) -> None:
    _, ids = three_runs
    path = f"/run/{ids[0]}/comparisons"
    status, _, everything = get(viewer, path)
    assert status == 200
    total = int(re.search(r'id="pair-count">(\d+) of (\d+)', everything).group(2))  # type: ignore[union-attr]
    status, _, first = get(viewer, path, disagree="1")
    again = get(viewer, path, disagree="1")[2]
    assert status == 200
    shown, of = map(int, re.search(r'id="pair-count">(\d+) of (\d+)', first).groups())  # type: ignore[union-attr]
    assert of == total and 0 < shown < total
    assert first.count('<article class="cmp">') == shown and first.count("judges disagree</span>") == shown
    strip = re.compile(r'nonce(-|=")[^"\']+')
    assert strip.sub("", first) == strip.sub("", again)  # the same URL gives the same page
    assert 'name="disagree" value="1" checked' in first
    searched = get(viewer, path, q="thing 1")[2]
    assert 0 < searched.count('<article class="cmp">') < total
    assert all("thing 1" in p for p in re.findall(r'<pre class="prompt">([^<]*)</pre>', searched))
    picked_1 = get(viewer, path, judge="fixed", verdict="1")[2].split('<article class="cmp">')[1:]
    assert 0 < len(picked_1) < total
    for article in picked_1:  # only the fixed judge's rows, and one of them picked Answer 1
        assert "<td>marker</td>" not in article
        assert re.search(r'<td>fixed</td><td class="n">\d</td><td>Answer 1</td>', article)


def test_browse_filter_round_trips_through_the_query_string(three_runs: tuple[Path, list[str]]) -> None:
    f = read_filter({"judge": "fixed", "verdict": "tie", "flipped": "1", "q": "x", "page": "2", "disagree": "0"})
    assert f == BrowseFilter(judge="fixed", verdict="tie", flipped=True, q="x", page=2)
    assert read_filter(f.params()) == f
    assert read_filter({"verdict": "<script>", "page": "-3"}) == BrowseFilter()
    db, ids = three_runs
    from brie_bench.report.items import comparison_items
    from brie_bench.report.rows import load_run

    with Store(db, readonly=True) as store:
        every = pairs(comparison_items(load_run(store, ids[0])))
    fixed_said_a = browse(every, BrowseFilter(judge="fixed", verdict="tie"))
    assert fixed_said_a == []  # the fixed judge never ties
    flips = browse(every, BrowseFilter(flipped=True))
    assert flips and all(p.section == "brainstorm" for p in flips)  # only that section is judged in both orders


def test_requests_without_the_token_or_from_a_foreign_host_are_refused(viewer: int,
                                                                       three_runs: tuple[Path, list[str]]) -> None:
    _, ids = three_runs
    for path in ("/", f"/run/{ids[0]}", f"/run/{ids[0]}/comparisons", "/compare"):
        status, _, text = get(viewer, path, token=None)
        assert status == 403 and "brie-bench view" in text and "<" not in text
        assert get(viewer, path, token="wrong")[0] == 403
    status, _, text = get(viewer, "/", headers={"Host": "evil.example:80"})
    assert status in (400, 403) and "Host" in text
    assert get(viewer, "/", headers={"Host": f"localhost:{viewer}"})[0] == 200
    assert get(viewer, "/", method="POST")[0] == 405


def test_view_command_refuses_a_missing_database_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(tmp_path / "none.db"), "view"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "database not found" in done.stderr


def test_view_command_prints_a_url_that_serves_the_runs(three_runs: tuple[Path, list[str]]) -> None:
    db, ids = three_runs
    proc = subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "view", "--port", "0",
                             "--idle-exit", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        found = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\?token=([\w-]+)", url)
        assert found, url
        port, token = int(found.group(1)), found.group(2)
        status, _, html = get(port, "/", token=token)
        assert status == 200 and sorted(listed_runs(html)) == sorted(ids)
        assert get(port, "/", token=None)[0] == 403
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 143
