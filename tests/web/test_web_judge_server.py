"""Browser judging without a browser: the session's plan, storage and undo, the server's guards, the CLI.

The browser itself (keys, reload, what a person sees) is tested in
test_web_judge_browser.py with Chromium; here the same server is driven over
loopback HTTP, so every check that needs no rendering runs fast and everywhere.
"""

from __future__ import annotations

import http.client
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import pytest

from brie_bench.errors import StopRun
from brie_bench.plan import build_plan
from brie_bench.plugin_manager import load_plugins
from brie_bench.plugins import human_judge
from brie_bench.report import build_report
from brie_bench.runtime import build_runtime
from brie_bench.store import Store
from brie_bench.suite import load_suite
from brie_bench.web.session import JudgingSession
from helpers import FIXTURE_PLUGINS, judging_app_served, rows, run_suite, scripted_suite, write_yaml

HOSTILE = ("<script>document.title='pwned'</script></textarea><img src=x onerror=alert(1)> {{ 7*7 }} "
           "{% raw %}x{% endraw %} \u202eevil\u202c")


def suite_data(**judges: dict) -> dict:
    """Two sections, one judged in both orders: 2 + 2×2 = 6 comparisons per judge."""
    return scripted_suite(
        judges={"marker": {"type": "marker"}, **judges},
        sections=[{"name": "philosophy", "prompts": ["What is being?", "What is time?"]},
                  {"name": "brainstorm", "prompts": ["Ideas for a bench", "Ideas for a cheese"], "orders": "both"}])


@pytest.fixture
def run_db(tmp_path: Path) -> tuple[Path, Path]:
    """A finished scripted run judged by the marker judge (which always picks the candidate)."""
    path, db = write_yaml(tmp_path / "s.yaml", suite_data()), tmp_path / "j.db"
    assert run_suite(path, db) == 0
    return path, db


def candidate_label(session: JudgingSession, key: str) -> str:
    return session.by_key[key].assignment.label_of("brie")


@contextmanager
def served(session: JudgingSession) -> Iterator[tuple[str, int, str]]:
    """The judging app on a free loopback port in a thread; stopped (and joined) on exit."""
    token = "test-token-" + "x" * 20
    with judging_app_served(session, token, extra_hosts=("localhost",)) as port:
        yield "127.0.0.1", port, token


def request(port: int, method: str, path: str, *, body: dict | None = None,
            headers: dict | None = None) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = urlencode(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if data else {}
    conn.request(method, path, body=data, headers={**hdrs, **(headers or {})})
    resp = conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text


def form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))


# -- the session: planning, storage, undo ----------------------------------------------------------

def test_plan_is_the_terminal_human_judges_plan_and_resumes_it(tmp_path: Path) -> None:
    """Same unit keys and assignments as a `human` judge of the same name: the two continue each other."""
    data = suite_data(alice={"type": "human", "options": {"judge_name": "alice"}})
    path, db = write_yaml(tmp_path / "s.yaml", data), tmp_path / "h.db"
    human_judge.set_key_source(["a", "b"])  # two comparisons at the terminal, then the keys run out: a quit
    try:
        with pytest.raises(StopRun):
            run_suite(path, db)
    finally:
        human_judge.set_key_source(None)
    suite = load_suite(path)
    runtime = build_runtime(suite, load_plugins(FIXTURE_PLUGINS))
    planned = {u.key: u.assignment for u in build_plan(suite, runtime.contenders, runtime.judges, 11).judgments
               if u.judge == "alice"}
    session = JudgingSession(str(db), None, "alice")
    try:
        assert {k: u.assignment for k, u in session.by_key.items()} == planned
        assert session.progress().judged == 2 and session.progress().total == 6
        for _ in range(4):
            unit = session.next_unit()
            assert unit is not None
            assert session.record(unit.key, candidate_label(session, unit.key))
        assert session.next_unit() is None and session.progress().done
    finally:
        session.close()
    human_judge.set_key_source([])  # the terminal judge has nothing left to ask: the run completes
    try:
        assert run_suite(path, db) == 0
    finally:
        human_judge.set_key_source(None)
    assert len(rows(db, "SELECT * FROM judgments WHERE judge='alice'")) == 6


def test_always_picking_the_fine_tune_is_a_100_percent_win_rate_under_both_assignments(run_db) -> None:
    _, db = run_db
    session = JudgingSession(str(db), None, "alice")
    try:
        while (unit := session.next_unit()) is not None:
            assert session.record(unit.key, candidate_label(session, unit.key), seconds=1.5)
    finally:
        session.close()
    stored = rows(db, "SELECT * FROM judgments WHERE judge='alice'")
    assert len(stored) == 6 and {r["winner"] for r in stored} == {"brie"}
    assert {r["label_a"] for r in stored} == {"baseline", "brie"}  # both assignments occurred
    assert {r["judge_type"] for r in stored} == {"human"} and all(r["raw"].startswith("alice: ") for r in stored)
    with Store(db, readonly=True) as store:
        report = build_report(store).to_json_dict()
    (alice,) = [j for j in report["judges"] if j["judge"] == "alice"]
    assert alice["win_rate"] == 1.0 and alice["wins"] == 4  # 2 + 2 comparisons (both orders count once)
    (entry,) = report["agreement"]
    assert entry["human_llm"] == [{"human": "alice", "judge": "marker", "n": 4, "percent": 1.0,
                                   "cohen_kappa": entry["human_llm"][0]["cohen_kappa"]}]


def test_undo_takes_back_the_latest_verdict_and_nothing_else(run_db) -> None:
    _, db = run_db
    session = JudgingSession(str(db), None, "alice")
    try:
        first, second = session.units[0], session.units[1]
        assert session.record(first.key, "A") and session.record(second.key, "skip")
        assert not session.record(second.key, "B")  # a second tab cannot overwrite it
        assert session.undo() == second.key
        assert session.next_unit() == second and session.progress().judged == 1
        assert session.undo() == first.key and session.undo() is None
        assert len(rows(db, "SELECT * FROM judgments WHERE judge='marker'")) == 6  # never anybody else's
    finally:
        session.close()


def test_skip_is_stored_as_invalid_like_at_the_terminal(run_db) -> None:
    _, db = run_db
    session = JudgingSession(str(db), None, "bob")
    try:
        session.record(session.units[0].key, "skip")
    finally:
        session.close()
    (row,) = rows(db, "SELECT verdict, winner, invalid_reason FROM judgments WHERE judge='bob'")
    assert (row["verdict"], row["winner"], row["invalid_reason"]) == ("invalid", None, "skipped")


def test_each_person_gets_their_own_order_and_keys(run_db) -> None:
    _, db = run_db
    alice, bob = JudgingSession(str(db), None, "alice"), JudgingSession(str(db), None, "bob")
    try:
        assert not set(alice.by_key) & set(bob.by_key)
        assert [u.prompt.text for u in alice.units] != [u.prompt.text for u in bob.units] or \
            [u.presentation_order for u in alice.units] != [u.presentation_order for u in bob.units]
        again = JudgingSession(str(db), None, "alice")
        assert [u.key for u in again.units] == [u.key for u in alice.units]  # stable across visits
        again.close()
    finally:
        alice.close()
        bob.close()


# -- the server ---------------------------------------------------------------------------------

def test_token_host_csrf_and_origin_are_enforced(run_db) -> None:
    _, db = run_db
    session = JudgingSession(str(db), None, "alice")
    with served(session) as (_, port, token):
        assert request(port, "GET", "/")[0] == 403
        assert request(port, "GET", "/?token=wrong")[0] == 403
        assert request(port, "GET", "/nothing")[0] == 403
        assert request(port, "GET", f"/?token={token}", headers={"Host": f"evil.example:{port}"})[0] == 403
        status, headers, html = request(port, "GET", f"/?token={token}")
        assert status == 200
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'nonce-" in csp and "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "same-origin"
        fields = form_fields(html)
        choice = candidate_label(session, fields["unit"])
        post = {"unit": fields["unit"], "choice": choice, "shown_at": fields["shown_at"]}
        assert request(port, "POST", f"/verdict?token={token}", body=post)[0] == 403  # no CSRF token
        assert request(port, "POST", f"/verdict?token={token}", body={**post, "csrf": "guess"})[0] == 403
        assert request(port, "POST", f"/verdict?token={token}", body={**post, "csrf": fields["csrf"]},
                       headers={"Origin": "http://evil.example"})[0] == 403
        assert request(port, "POST", "/verdict", body={**post, "csrf": fields["csrf"]})[0] == 403  # no token
        assert request(port, "GET", f"/verdict?token={token}")[0] == 405
        assert rows(db, "SELECT * FROM judgments WHERE judge='alice'") == []
        status, headers, _ = request(port, "POST", f"/verdict?token={token}", body={**post, "csrf": fields["csrf"]},
                                     headers={"Origin": f"http://127.0.0.1:{port}"})
        assert status == 303 and headers["location"].startswith("/?token=")
        (row,) = rows(db, "SELECT * FROM judgments WHERE judge='alice'")
        assert row["unit_key"] == fields["unit"] and row["winner"] == "brie" and row["latency_s"] is not None
        bad = {**post, "csrf": fields["csrf"], "choice": "baseline"}
        assert request(port, "POST", f"/verdict?token={token}", body=bad)[0] == 400
        status, _, html = request(port, "GET", f"/?token={token}")
        assert "1 / 6 judged" in html and "Recorded" not in html  # no notice without a fresh write
        status, headers, _ = request(port, "POST", f"/undo?token={token}", body={"csrf": fields["csrf"]})
        assert status == 303 and "said=undone" in headers["location"]
        assert rows(db, "SELECT * FROM judgments WHERE judge='alice'") == []
    session.close()


def test_hostile_answers_render_as_inert_text(run_db) -> None:
    _, db = run_db
    big = "x" * 1_000_000
    with Store(db) as store:
        gens = store.run_generations(store.run().id)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE generations SET text = ? || text WHERE key IN (SELECT gen_key FROM run_generations "
                     "WHERE contender='brie')", (HOSTILE + "\n",))
        conn.execute("UPDATE generations SET text = text || ? WHERE key IN (SELECT gen_key FROM run_generations "
                     "WHERE contender='baseline')", (big,))
    conn.close()
    assert gens
    session = JudgingSession(str(db), None, "alice")
    with served(session) as (_, port, token):
        status, _, html = request(port, "GET", f"/?token={token}")
    session.close()
    assert status == 200
    body = html.split("<main>", 1)[1].split("</main>", 1)[0]
    assert "<script" not in body and "<img" not in body and "</textarea>" not in body
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;&lt;/textarea&gt;&lt;img" in body
    assert "{{ 7*7 }}" in body and "{% raw %}" in body and "49" not in body
    assert "\u202e" not in html and "\\u202eevil\\u202c" in body
    assert big in body  # the megabyte arrives whole, as text
    assert html.count("<script") == 1  # only the page's own, nonce'd


# -- the command line ----------------------------------------------------------------------------

def cli(db: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "judge", *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args, message", [
    (["--name", "alice"], "add --web"),
    (["--web", "--name", "al\x01ice"], "--name:"),
    (["--web", "--name", "marker"], "'marker' is already a judge of run"),
    (["nope", "--web", "--name", "alice"], "no run 'nope'"),
])
def test_bad_input_is_one_line_and_exit_code_2(run_db, args: list[str], message: str) -> None:
    _, db = run_db
    done = cli(db, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_database_is_bad_input(tmp_path: Path) -> None:
    done = cli(tmp_path / "none.db", "--web", "--name", "alice")
    assert done.returncode == 2 and "database not found" in done.stderr


def test_the_command_prints_the_url_first_and_refuses_requests_without_its_token(run_db) -> None:
    _, db = run_db
    proc = subprocess.Popen([sys.executable, "-m", "brie_bench", "--db", str(db), "judge", "--web", "--name",
                             "alice", "--port", "0", "--idle-exit", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        parts = urlsplit(url)
        assert parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.query.startswith("token=")
        assert len(parts.query.removeprefix("token=")) >= 32
        assert "0 of 6 comparisons judged" in proc.stdout.readline()
        port = parts.port
        assert port is not None
        assert request(port, "GET", "/")[0] == 403
        status, _, html = request(port, "GET", f"/?{parts.query}")
        assert status == 200 and "Comparison <b>1</b> of 6" in html
        for secret in ("baseline", "brie", "marker", "scripted"):
            assert secret not in html  # blind: no contender, backend or other judge's name
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_command_stops_by_itself_when_idle(run_db) -> None:
    _, db = run_db
    done = cli(db, "--web", "--name", "alice", "--port", "0", "--idle-exit", "1", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("http://127.0.0.1:") and "no request for 1 s: stopping" in done.stdout


def test_report_html_shows_people_beside_the_llm_judges(run_db, tmp_path: Path) -> None:
    _, db = run_db
    session = JudgingSession(str(db), None, "alice")
    try:
        while (unit := session.next_unit()) is not None:
            session.record(unit.key, "A")
    finally:
        session.close()
    out = tmp_path / "r.html"
    done = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "report", "--html", str(out)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, COLUMNS="200"))
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    section = html.split('id="human-llm-agreement"', 1)[1].split("</table>", 1)[0]
    assert "<td>alice</td><td>marker</td>" in section
    env = dict(os.environ, COLUMNS="200")
    for args, line in ((["--markdown", str(tmp_path / "r.md")], None),
                       ([], "alice (a person) and marker agree on")):
        done = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(db), "report", *args],
                              capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        if line:
            assert line in done.stdout
    assert "**alice (a person, blind) and marker** agree on" in (tmp_path / "r.md").read_text(encoding="utf-8")


def test_two_people_judge_the_same_run_at_the_same_time(run_db) -> None:
    """Two servers on one file, verdicts interleaved: each keeps their own, the report pairs each with the LLM."""
    _, db = run_db
    alice, bob = JudgingSession(str(db), None, "alice"), JudgingSession(str(db), None, "bob")
    with served(alice) as (_, port_a, token_a), served(bob) as (_, port_b, token_b):
        for _ in range(6):
            for session, port, token, pick_fine_tune in ((alice, port_a, token_a, True),
                                                         (bob, port_b, token_b, False)):
                fields = form_fields(request(port, "GET", f"/?token={token}")[2])
                label = candidate_label(session, fields["unit"])
                choice = label if pick_fine_tune else ("B" if label == "A" else "A")
                status, _, _ = request(port, "POST", f"/verdict?token={token}",
                                       body={"csrf": fields["csrf"], "unit": fields["unit"], "choice": choice})
                assert status == 303
        assert "All 6 comparisons judged" in request(port_a, "GET", f"/?token={token_a}")[2]
    alice.close()
    bob.close()
    winners = {(r["judge"], r["winner"]) for r in rows(db, "SELECT judge, winner FROM judgments")}
    assert winners == {("marker", "brie"), ("alice", "brie"), ("bob", "baseline")}
    with Store(db, readonly=True) as store:
        (entry,) = build_report(store).to_json_dict()["agreement"]
    people = {(h["human"], h["judge"]): h["percent"] for h in entry["human_llm"]}
    assert people == {("alice", "marker"): 1.0, ("bob", "marker"): 0.0}
    assert any({p["judge_a"], p["judge_b"]} == {"alice", "bob"} and p["percent"] == 0.0 for p in entry["pairs"])
