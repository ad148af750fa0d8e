"""`brie-bench judge --web --sample N`: each person sees the comparisons of N random prompts, seeded and stored.

The human-calibrated (PPI++) win rate needs the prompts people judged to be a
random subset; these tests check that the page offers exactly the comparisons of
N distinct prompts (by normalised text, the report's clusters), the same ones on
reload and on a second start, other ones for another person, all of them when N
exceeds the run's prompts, and that N < 1 is one line and exit 2.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from brie_bench.textsafe import normalise_prompt
from brie_bench.web.session import SAMPLES_KEY, JudgingSession
from helpers import form_request, judging_app_served, rows, run_suite, scripted_suite, write_yaml

#: Ten distinct prompt texts: "What is time?" appears in two sections (and once with other case and spaces),
#: so it is one prompt with several comparisons; the brainstorm section is judged in both orders.
PHILOSOPHY = [f"What is being number {i}?" for i in range(6)] + ["What is time?"]
BRAINSTORM = ["Ideas for a bench", "Ideas for a cheese", "  what IS   time? ", "Ideas for a wheel"]
DISTINCT = 10


@pytest.fixture
def run_db(tmp_path: Path) -> Path:
    data = scripted_suite(judges={"marker": {"type": "marker"}},
                          sections=[{"name": "philosophy", "prompts": PHILOSOPHY},
                                    {"name": "brainstorm", "prompts": BRAINSTORM, "orders": "both"}])
    db = tmp_path / "j.db"
    assert run_suite(write_yaml(tmp_path / "s.yaml", data), db) == 0
    return db


def prompts_of(session: JudgingSession) -> set[str]:
    return {normalise_prompt(u.prompt.text) for u in session.units}


def stored_samples(db: Path) -> dict:
    (row,) = rows(db, "SELECT metadata FROM runs")
    return json.loads(row["metadata"]).get(SAMPLES_KEY, {})


@contextmanager
def served(session: JudgingSession) -> Iterator[tuple[int, str]]:
    token = "sample-token-" + "x" * 20
    with judging_app_served(session, token) as port:
        yield port, token


request = form_request


def fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))


def test_the_page_offers_exactly_the_comparisons_of_n_prompts_and_the_same_on_reload(run_db: Path) -> None:
    full = JudgingSession(str(run_db), None, "alice")
    session = JudgingSession(str(run_db), None, "alice", sample=3)
    try:
        assert len(prompts_of(full)) == DISTINCT
        chosen = prompts_of(session)
        assert len(chosen) == 3 and chosen < prompts_of(full)
        expected = {u.key for u in full.units if normalise_prompt(u.prompt.text) in chosen}
        assert set(session.by_key) == expected  # every comparison of those prompts (both orders), no other
        assert session.sample is not None and set(session.sample.prompts) == chosen
        with served(session) as (port, token):
            shown: list[str] = []
            while True:
                status, html = request(port, "GET", f"/?token={token}")
                assert status == 200
                form = fields(html)
                if "unit" not in form:
                    break
                assert request(port, "GET", f"/?token={token}")[1].count(form["unit"]) >= 1  # a reload: same one
                assert fields(request(port, "GET", f"/?token={token}")[1])["unit"] == form["unit"]
                shown.append(form["unit"])
                status, _ = request(port, "POST", f"/verdict?token={token}",
                                    {"csrf": form["csrf"], "unit": form["unit"], "choice": "A"})
                assert status == 303
        assert len(shown) == len(set(shown)) and set(shown) == expected
    finally:
        full.close()
        session.close()
    judged = {r["unit_key"] for r in rows(run_db, "SELECT unit_key FROM judgments WHERE judge='alice'")}
    assert judged == expected
    entry = stored_samples(run_db)["alice"]
    assert entry["n"] == 3 and entry["available"] == DISTINCT and set(entry["prompts"]) == chosen


def test_a_second_start_shows_the_same_prompts_and_another_name_others(run_db: Path) -> None:
    first = JudgingSession(str(run_db), None, "alice", sample=4)
    chosen, keys = prompts_of(first), [u.key for u in first.units]
    first.close()
    before = stored_samples(run_db)
    again = JudgingSession(str(run_db), None, "alice", sample=4)
    assert prompts_of(again) == chosen and [u.key for u in again.units] == keys
    again.close()
    assert stored_samples(run_db) == before  # nothing rewritten on a resumed session
    others = [JudgingSession(str(run_db), None, name, sample=4) for name in ("bob", "chloé", "dmitri")]
    try:
        assert all(len(prompts_of(s)) == 4 for s in others)
        assert any(prompts_of(s) != chosen for s in others)  # three fresh draws of 4 from 10 all equal: p ≈ 1e-7
    finally:
        for s in others:
            s.close()
    samples = stored_samples(run_db)
    assert set(samples) == {"alice", "bob", "chloé", "dmitri"}  # each person's draw kept beside the others
    assert set(samples["alice"]["prompts"]) == chosen


def test_the_draw_is_uniform_over_prompts_not_over_comparisons(run_db: Path) -> None:
    """"What is time?" has 3 of the 15 comparisons (two sections, one in both orders) yet is drawn like any prompt.

    Over 200 people drawing one prompt each, a uniform draw picks it about 20 times
    (1 in 10, SD 4.2); a draw weighted by comparisons would pick it about 40 times (1 in 5).
    """
    hits = 0
    for i in range(200):
        session = JudgingSession(str(run_db), None, f"p{i}", sample=1)
        hits += prompts_of(session) == {"what is time?"}
        session.close()
    assert 8 <= hits <= 30, hits


def test_n_beyond_the_runs_prompts_gives_all_of_them(run_db: Path) -> None:
    full = JudgingSession(str(run_db), None, "alice")
    session = JudgingSession(str(run_db), None, "alice", sample=50)
    try:
        assert set(session.by_key) == set(full.by_key)
        assert session.sample is not None and session.sample.available == DISTINCT
    finally:
        full.close()
        session.close()
    assert len(stored_samples(run_db)["alice"]["prompts"]) == DISTINCT


@pytest.mark.parametrize("n", ["0", "-3"])
def test_n_below_one_is_one_line_and_exit_2(run_db: Path, n: str) -> None:
    done = subprocess.run([sys.executable, "-m", "brie_bench", "--db", str(run_db), "judge", "--web", "--name",
                           "alice", "--sample", n], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "--sample" in done.stderr
    assert "Traceback" not in done.stderr and stored_samples(run_db) == {}  # nothing drawn, nothing stored
