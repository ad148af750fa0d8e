"""The storage contract, run unchanged on both stores (a SQLite file and a real PostgreSQL database).

Everything the engine, the report and the judging page rely on: runs found and resumed, rows
stored once (a second save of the same key is refused, not doubled), a verdict and its lease
release in one transaction, leases claimed by one owner until they expire or are given back,
readonly opening, values read back exactly as written, and the refusal of a database that is
not ours or is newer than this code. Only the storage modules contain SQL; a test here checks
that too.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brie_bench.errors import InputError
from brie_bench.rows import GenerationRow, JudgmentRow
from brie_bench.store_api import SCHEMA_VERSION, Store, open_store
from hostile.kit import query

ROOT = Path(__file__).resolve().parents[2]


def new_run(store: Store, **overrides: object) -> str:
    args: dict = dict(suite_name="s", suite_path="s.yaml", fingerprint="fp", snapshot={"sections": []}, seed=7,
                      versions={"brie_bench": "x"}, metadata={"contenders": {"a": 1}, "ünï": "côde"})
    args.update(overrides)
    return store.create_run(**args)


def generation(key: str, text: str = "an answer ✓") -> GenerationRow:
    return GenerationRow(key=key, backend="openai", model="m", spec={"b": 1, "a": [1, 2]},
                         messages=[{"role": "user", "content": "q"}], params={"t": 0.5}, sample_index=0, text=text,
                         finish_reason="stop", input_tokens=3, output_tokens=5, latency_s=0.1 + 0.2,
                         created_at=1700000000.123456789)


def judgment(run_id: str, key: str, **overrides: object) -> JudgmentRow:
    values: dict = dict(run_id=run_id, unit_key=key, section="sec", prompt_id="p1", sample_index=0, judge="j",
                        judge_type="llm", baseline="base", candidate="brie", presentation_order=0, label_a="base",
                        label_b="brie", gen_key_a="ga", gen_key_b="gb", verdict="B", winner="brie", raw="Winner: B",
                        p_a=1 / 3, scores={"brie": {"help": 4.5}}, latency_s=math.pi, created_at=1700000001.5)
    values.update(overrides)
    return JudgmentRow(**values)


def test_runs_are_created_found_and_resumed(store_target: str) -> None:
    with open_store(store_target) as store:
        assert store.schema_version == SCHEMA_VERSION
        run_id, created = store.resume_or_create_run(new=False, suite_name="s", suite_path="s.yaml", fingerprint="fp",
                                                     snapshot={"x": [1]}, seed=7, versions={}, metadata={"k": "v"})
        assert created
        again, created = store.resume_or_create_run(new=False, suite_name="s", suite_path="s.yaml", fingerprint="fp",
                                                    snapshot={"x": [1]}, seed=7, versions={}, metadata={})
        assert (again, created) == (run_id, False)
        assert store.find_resumable_run("fp", 8) is None
        assert store.run().id == run_id and store.run(run_id[:10]).id == run_id
        assert store.suite_snapshot(run_id) == {"x": [1]}
        store.mark_run(run_id, "running")
        store.change_run_metadata(run_id, lambda m: {**m, "added": [1, 2]})
        store.change_run_metadata(run_id, lambda m: None)  # None: leave it as it is
        assert store.run_metadata(run_id) == {"k": "v", "added": [1, 2]}
        assert store.run(run_id).status == "running"
        with pytest.raises(InputError, match="no run 'nope'"):
            store.run("nope")


def test_rows_read_back_exactly_as_written(store_target: str) -> None:
    with open_store(store_target) as store:
        run_id = new_run(store)
        assert store.save_generation(generation("ga", "A\u00e9\U0001F9C0 'quoted' \"x\"")) is True
        assert store.save_generation(generation("ga", "another text")) is False  # stored once
        assert store.save_generation(generation("gb")) is True
        store.link_generations(run_id, [("sec", "p1", 0, "base", "ga"), ("sec", "p1", 0, "brie", "gb")])
        store.link_generations(run_id, [("sec", "p1", 0, "base", "ga")])  # again: no duplicate
        row = judgment(run_id, "u1")
        assert store.save_judgment(row) is True
        assert store.save_judgment(judgment(run_id, "u1", verdict="A")) is False
        assert store.judgments(run_id) == [row]
        assert store.judgment_stored(run_id, "u1") and not store.judgment_stored(run_id, "u2")
        assert store.stored_judgment_keys(run_id) == {"u1"}
        assert store.count_judgments(run_id) == 1 and store.count_judgments(run_id, ["u1", "u9"]) == 1
        assert store.generation_texts(["ga", "zz"]) == {"ga": "A\u00e9\U0001F9C0 'quoted' \"x\""}
        assert store.stored_generation_keys(["ga", "gb", "gc"]) == {"ga", "gb"}
        assert len(store.run_generations(run_id)) == 2
        figures = store.run_generation_figures(run_id)
        assert sorted(f[3] for f in figures) == ["base", "brie"] and all(f[5:7] == (3, 5) for f in figures)
        assert {f[4]: f[10] for f in figures} == store.generation_features(["ga", "gb"])  # each answer's figures
        (seq, p_a, latency, created), = store.judgment_tuples(run_id, ["p_a", "latency_s", "created_at"])
        assert (p_a, latency, created) == (1 / 3, math.pi, 1700000001.5)  # float64 both ways, bit for bit
        texts = next(store.iter_judgments_with_texts(run_id))
        assert texts["scores"] == {"brie": {"help": 4.5}} and texts["text_b"] == "an answer ✓"
        assert store.judged_answer_texts(run_id).keys() == {"ga", "gb"}
        assert store.other_judge_type(run_id, "j") == "llm" and store.other_judge_type(run_id, "k") is None
        store.save_error(run_id=run_id, unit_key="u2", unit_kind="judgment", name="j", attempt=1, kind="timeout",
                         transient=True, final=False, message="slow")
        (err,) = store.errors(run_id)
        assert (err["kind"], err["transient"], err["final"], err["message"]) == ("timeout", 1, 0, "slow")
        store.save_batch(run_id, "j", "b1", ["u3", "u4"])
        assert store.open_batches(run_id, "j") == [("b1", ["u3", "u4"])]
        store.finish_batch(run_id, "b1")
        assert store.open_batches(run_id, "j") == []
        store.save_judgment(judgment(run_id, "u5", created_at=1700000009.0))
        assert store.delete_latest_judgment(run_id, ["u1", "u5"]) == "u5"
        assert store.stored_judgment_keys(run_id) == {"u1"}
        assert store.integrity_check() == "ok"


def test_a_verdict_and_its_lease_release_commit_together(store_target: str) -> None:
    with open_store(store_target) as store:
        run_id = new_run(store)
        since = time.time() - 1
        assert store.claim("p1", [f"j:{run_id}:u1"], ttl_s=60, since=since) == "claimed"
        with pytest.raises(Exception, match="(?i)not.null"):  # a NOT NULL column left empty: all refused
            store.save_judgment(judgment(run_id, "u1", raw=None), release=("p1", [f"j:{run_id}:u1"]))
        assert query(store_target, "SELECT owner FROM leases") == [{"owner": "p1"}]  # lease kept
        assert store.save_judgment(judgment(run_id, "u1"), release=("p1", [f"j:{run_id}:u1"]))
        assert query(store_target, "SELECT * FROM leases") == []


def test_claims_respect_other_owners_until_the_lease_expires(store_target: str) -> None:
    with open_store(store_target) as store:
        since = time.time() - 1
        assert store.claim("p1", ["g:a", "g:b"], ttl_s=60, since=since) == "claimed"
        assert store.claim("p2", ["g:b"], ttl_s=60, since=since) == "held"
        assert store.claim("p2", ["g:b", "g:new"], ttl_s=60, since=since) == "held"
        assert store.lease_state("p2", ["g:new"], since=since) == "free"  # an all-or-nothing claim left nothing
        assert store.lease_state("p2", ["g:a"], since=since) == "held"
        assert store.claim("p1", ["g:a"], ttl_s=60, since=since) == "claimed"  # an owner may renew its own
        assert store.claim("p2", ["g:c"], ttl_s=60, since=since, stored=lambda: True) == "stored"
        assert store.lease_state("p3", ["g:c"], since=since) == "free"  # nothing kept for stored work
        store.release("p1", ["g:a"], failed=True)
        assert store.claim("p2", ["g:a"], ttl_s=60, since=since) == "failed"  # a peer gave up on it: not again
        assert store.claim("p3", ["g:a"], ttl_s=60, since=time.time() + 1) == "claimed"  # a later rerun retries
        query_expire(store_target, "g:b")
        assert store.claim("p2", ["g:b"], ttl_s=60, since=since) == "claimed"  # expired: taken over
        assert store.renew("p2", 60) == 1
        store.release_all("p2")
        assert {r["key"] for r in query(store_target, "SELECT key FROM leases")} == {"g:a"}


def query_expire(target: str, key: str) -> None:
    """Make one lease expired (a writing statement through the test's own connection)."""
    if target.startswith("postgres"):
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("UPDATE leases SET expires_at=0 WHERE key=%s", (key,))
    else:
        import sqlite3

        with sqlite3.connect(target) as conn:
            conn.execute("UPDATE leases SET expires_at=0 WHERE key=?", (key,))


def test_readonly_opening_reads_and_never_writes(store_target: str) -> None:
    with open_store(store_target) as store:
        run_id = new_run(store)
    with open_store(store_target, readonly=True) as store:
        assert [r.id for r in store.runs()] == [run_id]
        with pytest.raises(Exception, match="(?i)read-?only"):
            store.mark_run(run_id, "complete")
    assert query(store_target, "SELECT status FROM runs") == [{"status": "created"}]


def test_every_store_method_is_implemented_by_both() -> None:
    from brie_bench.store import SQLiteStore
    from brie_bench.store_pg import PostgresStore

    contract = {name for name, value in vars(Store).items() if callable(value) and not name.startswith("_")}
    for cls in (SQLiteStore, PostgresStore):
        missing = sorted(name for name in contract - {"clock"} if getattr(cls, name) is getattr(Store, name))
        assert not missing, f"{cls.__name__} does not implement {missing}"


def test_only_the_storage_modules_hold_sql() -> None:
    # The storage interface and its two implementations; besides them only the PostgreSQL-only
    # global concurrency limit (its own tables, no run data) and the test server's set-up.
    allowed = {"store.py", "store_api.py", "store_pg.py", "global_limits.py", "testing/pg_server.py"}
    pattern = re.compile(r"\.execute(many)?\(|\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b")
    offenders = []
    for path in (ROOT / "brie_bench").rglob("*.py"):
        relative = path.relative_to(ROOT / "brie_bench").as_posix()
        if relative in allowed:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_sqlite_path_never_imports_psycopg(tmp_path: Path) -> None:
    """`run` and `report` on a SQLite file work without the PostgreSQL driver ever being imported."""
    from hostile.kit import loopback, loopback_suite, write_suite

    script = (
        "import sys, runpy\n"
        "sys.argv = ['brie-bench', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('brie_bench', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "else:\n"
        "    code = 0\n"
        "print('PSYCOPG', 'psycopg' in sys.modules, file=sys.stderr)\n"
        "sys.stderr.flush()\n"
    )
    with loopback(max_lifetime_s=100) as srv:
        suite = write_suite(tmp_path / "suite.yaml", loopback_suite(srv, prompts=2))
        db = tmp_path / "plain.db"
        for args in (["--db", str(db), "run", str(suite)], ["--db", str(db), "report", "--json"],
                     ["--db", f"sqlite:///{db}", "runs"]):
            done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
            assert "PSYCOPG False" in done.stderr, done.stdout + done.stderr
            assert "PSYCOPG True" not in done.stderr


def test_a_foreign_or_newer_postgres_database_is_refused(postgres_url: str) -> None:
    import psycopg

    with open_store(postgres_url) as store:
        new_run(store)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    for readonly in (False, True):
        with pytest.raises(InputError, match="schema version 99, newer than this brie-bench understands"):
            open_store(postgres_url, readonly=readonly)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE meta")
    with pytest.raises(InputError, match="not a Brie Bench database"):
        open_store(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
        conn.execute("ALTER TABLE judgments RENAME COLUMN verdict TO outcome")
    with pytest.raises(InputError, match="table 'judgments' has no column verdict"):
        open_store(postgres_url)


def test_a_newer_postgres_database_is_exit_2_from_the_cli(postgres_url: str) -> None:
    import psycopg

    with open_store(postgres_url) as store:
        new_run(store)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value=%s WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    for command in (["runs"], ["report", "--json"]):
        done = subprocess.run([sys.executable, "-m", "brie_bench", "--db", postgres_url, *command],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stdout + done.stderr
        assert (f"schema version {SCHEMA_VERSION + 1}, newer than this brie-bench understands ({SCHEMA_VERSION}); "
                "upgrade brie-bench") in done.stderr
        assert "Traceback" not in done.stderr


def test_a_worker_whose_session_dies_has_its_leases_taken_over_at_once(postgres_url: str) -> None:
    """Leases of 60 s, far from expired: once the owner's process is gone, its units are free at once."""
    worker = (
        "import sys, time\n"
        "from brie_bench.store_api import open_store\n"
        "from brie_bench.leases import Leases\n"
        "store = open_store(sys.argv[1])\n"
        "leases = Leases(store, ttl_s=60)\n"
        "assert leases.claim(['g:one', 'g:two']) == 'claimed'\n"
        "print('CLAIMED', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", worker, postgres_url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "CLAIMED"
        with open_store(postgres_url) as store:
            since = time.time() - 1
            assert store.claim("heir", ["g:one"], ttl_s=60, since=since) == "held"  # alive: not taken
            proc.kill()
            proc.wait(timeout=30)
            deadline = time.monotonic() + 10
            state = "held"
            while state == "held" and time.monotonic() < deadline:  # the server notices the closed socket
                state = store.claim("heir", ["g:one", "g:two"], ttl_s=60, since=since)
                time.sleep(0.05)
            assert state == "claimed"
            assert time.monotonic() < deadline
    finally:
        proc.kill()


def test_an_answer_with_a_nul_character_is_stored(store_target: str) -> None:
    """PostgreSQL text cannot hold NUL; SQLite can. Either way the answer is stored, not failed:
    on PostgreSQL the NUL reads back as U+FFFD, everything around it as written."""
    with open_store(store_target) as store:
        run_id = new_run(store)
        assert store.save_generation(generation("gn", "before\x00after")) is True
        store.link_generations(run_id, [("sec", "p1", 0, "base", "gn")])
        assert store.save_judgment(judgment(run_id, "jn", raw="Winner\x00: B", gen_key_a="gn", gen_key_b="gn"))
        text = store.generation_texts(["gn"])["gn"]
        assert text == ("before\ufffdafter" if store_target.startswith("postgresql") else "before\x00after")


def _write(target: str, sql: str, *args: object) -> None:
    """One statement on the store's database from outside, committed (a hand edit)."""
    if target.startswith("postgres"):
        import psycopg

        with psycopg.connect(target, autocommit=True) as pg:
            pg.execute(sql.replace("?", "%s"), args)  # type: ignore[arg-type]
        return
    import sqlite3

    conn = sqlite3.connect(target)
    try:
        with conn:
            conn.execute(sql, args)
    finally:
        conn.close()


def test_an_answers_features_are_stored_with_it_and_cleared_when_its_text_changes(store_target: str) -> None:
    """`generations.features` (brie_bench.answer_features) is written with the text, read by key, and set
    NULL by the database itself when the text is changed in place, so a report never reads stale figures."""
    from brie_bench.answer_features import stored_features

    text = "# Title\n- one\n**bold** then Winner: B"
    with open_store(store_target) as store:
        new_run(store)
        assert store.save_generation(generation("ga", text)) is True
        assert store.save_generation(generation("gb")) is True
        assert store.generation_features(["ga", "gb", "missing"]) == {"ga": stored_features(text),
                                                                      "gb": stored_features("an answer ✓")}
    _write(store_target, "UPDATE generations SET text=? WHERE key=?", "edited by hand", "ga")
    _write(store_target, "UPDATE generations SET model=? WHERE key=?", "renamed", "gb")  # not the text: kept
    with open_store(store_target, readonly=True) as store:
        assert store.generation_features(["ga", "gb"]) == {"ga": None, "gb": stored_features("an answer ✓")}


def test_a_verdicts_columns_are_read_by_its_insertion_order(store_target: str) -> None:
    """`judgment_values`: the columns a report reads of one verdict only when it lists that verdict."""
    with open_store(store_target) as store:
        run_id = new_run(store)
        other = new_run(store)
        for key in ("j1", "j2"):
            assert store.save_judgment(judgment(run_id, key, verdict=key.upper()))
        assert store.save_judgment(judgment(other, "j1", verdict="OTHER"))
        seqs = [t[0] for t in store.judgment_tuples(run_id, ["unit_key"])]
        found = store.judgment_values(run_id, seqs, ["verdict", "label_b", "scores"])
        assert found == {seqs[0]: ("J1", "brie", '{"brie": {"help": 4.5}}'),
                         seqs[1]: ("J2", "brie", '{"brie": {"help": 4.5}}')}
        assert store.judgment_values(run_id, [], ["verdict"]) == {}
        with pytest.raises(ValueError, match="not judgment columns"):
            store.judgment_values(run_id, seqs, ["text"])
