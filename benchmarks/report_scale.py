"""How long `brie-bench report` takes, and how big the HTML gets, for a run with many judgments.

Builds a synthetic run in a temporary store through the store's own public methods
(`create_run`, `save_generation`, `link_generations`, `save_judgment`, so the file
always has the current schema; no models, no engine): prompts in four sections, one
of them judged in both orders, four judges with per-criterion scores and realistic
answer lengths (about 0.4-1.4 KB per answer, 0.3-0.6 KB per judge answer). Then
times, each in a fresh process (`python -m brie_bench --db ... report`, what a
person runs, imports included):

* `report --json` (load without answer texts, every statistic, write the JSON);
* `report --html` (load with texts, statistics, render, write), and the file size.

    python benchmarks/report_scale.py [--judgments 10000] [--no-html]

Ends with: RESULT report_seconds=... report_cpu_seconds=... html_seconds=... size_mb=... judgments=...
(`report_seconds` is `report --json`; the targets: 1 s at 10,000 judgments, 3 s at
100,000; the HTML one: 10 s and 25 MB at 10,000.)
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from brie_bench.rows import GenerationRow, JudgmentRow  # noqa: E402
from brie_bench.store import Store  # noqa: E402

WORDS = ("being time world care anxiety silence dawn river stone breath light thought other face "
         "gift absence presence language body memory desire ethics freedom horizon question").split()
CRITERIA = ("creativity", "coherence", "depth", "engagement", "writing_quality")
JUDGES = ("claude", "gpt", "gemini", "local")


def words(rng: np.random.Generator, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(lo, hi))).tolist())


def build(db: Path, n_judgments: int, seed: int = 0) -> str:
    """Create one run with about `n_judgments` judgments (at least 20: a prompt per section); returns its id."""
    rng = np.random.default_rng(seed)
    per_prompt = len(JUDGES) * 1.25  # three sections single order, one both orders
    per_section = max(1, int(round(n_judgments / per_prompt)) // 4)  # at least one prompt each: 20 judgments
    sections = [("philosophy", "one"), ("contemplative", "one"), ("creative", "one"), ("brainstorming", "both")]
    prompts = {name: [(f"{name}-{i + 1}", f"Question {i}: " + words(rng, 8, 30)) for i in range(per_section)]
               for name, _ in sections}
    snapshot = {"name": "scale", "baseline": "baseline",
                "sections": [{"name": n, "prompts": [{"id": i, "text": t} for i, t in prompts[n]]}
                             for n, _ in sections]}
    meta = {"baseline": "baseline",
            "contenders": {"baseline": {"backend": "openai", "model": "gpt-4o-mini", "options": {}, "role": "baseline"},
                           "brie": {"backend": "hf", "model": "Qwen/Qwen2.5-3B-Instruct",
                                    "options": {"adapter": "runs/brie-v2"}, "role": "candidate",
                                    "provenance": {"base_model": "Qwen/Qwen2.5-3B-Instruct", "lora_r": 16}}},
            "judges": {j: {"name": j, "judge": "llm", "model": f"{j}-model", "backend": {"backend": "openai"},
                           "options": {}} for j in JUDGES}}
    with Store(db) as store:
        # The build only: no fsync per commit (the timed part reads, it never writes).
        store.conn.execute("PRAGMA synchronous=OFF")
        run_id = store.create_run(suite_name="scale", suite_path="scale.yaml", fingerprint="scale", snapshot=snapshot,
                                  seed=seed, versions={"brie_bench": "bench"}, metadata=meta)
        links = []
        now = time.time()
        for name, orders in sections:
            for pid, text in prompts[name]:
                keys = {}
                for contender, lo, hi in (("baseline", 60, 180), ("brie", 80, 220)):
                    key = f"{contender}-{name}-{pid}"
                    keys[contender] = key
                    store.save_generation(GenerationRow(
                        key=key, backend="synthetic", model=contender, spec={},
                        messages=[{"role": "user", "content": text}], params={}, sample_index=0,
                        text=words(rng, lo, hi), finish_reason="stop", input_tokens=30, output_tokens=200,
                        latency_s=1.0))
                    links.append((name, pid, 0, contender, key))
                brie_quality = rng.normal(0.3, 1.0)
                for judge in JUDGES:
                    first_ft = bool(rng.integers(0, 2))
                    for order in ((0, 1) if orders == "both" else (0,)):
                        ft_a = first_ft if order == 0 else not first_ft
                        a, b = ("brie", "baseline") if ft_a else ("baseline", "brie")
                        u = rng.random()
                        ft_wins = brie_quality + rng.normal(0, 1) > 0
                        verdict = "invalid" if u < 0.03 else "tie" if u < 0.1 else ("A" if ft_wins == ft_a else "B")
                        winner = None if verdict == "invalid" else "tie" if verdict == "tie" else (a if verdict == "A"
                                                                                                 else b)
                        scores = {lab: {c: int(rng.integers(1, 6)) for c in CRITERIA} for lab in ("A", "B")}
                        raw = ("Reasoning: " + words(rng, 30, 70) + "\n" + "\n".join(
                            f"{c}: A={scores['A'][c]}, B={scores['B'][c]}" for c in CRITERIA)
                            + f"\nWinner: {verdict if verdict != 'invalid' else '?'}")
                        store.save_judgment(JudgmentRow.from_mapping({
                            "run_id": run_id, "unit_key": f"{judge}-{name}-{pid}-{order}", "section": name,
                            "prompt_id": pid, "sample_index": 0, "judge": judge, "judge_type": "llm",
                            "judge_model": f"{judge}-model", "baseline": "baseline", "candidate": "brie",
                            "order_index": order, "label_a": a, "label_b": b, "gen_key_a": keys[a],
                            "gen_key_b": keys[b], "verdict": verdict, "winner": winner, "p_a": None,
                            "scores": scores, "reasoning": None,
                            "invalid_reason": "no verdict line" if verdict == "invalid" else None, "raw": raw,
                            "input_tokens": 800, "output_tokens": 120, "latency_s": 2.0, "created_at": now}))
        store.link_generations(run_id, links)
        store.mark_run(run_id, "complete")
    return run_id


def timed_report(db: Path, run_id: str, *flags: str) -> tuple[float, float]:
    """(wall, CPU) seconds of `brie-bench report RUN FLAGS` in a fresh process (imports included).

    The CPU time (user + system of the child) is what the wall time would be on a quiet
    machine for this single-threaded command; on a shared one the wall time also counts
    waiting for a core.
    """
    argv = [sys.executable, "-m", "brie_bench", "--db", str(db), "report", run_id, *flags]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(ROOT))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def side_by_side(db: Path, run_id: str) -> tuple[float, float]:
    """CPU seconds to load and compute the report in this process: (as now, as before issue 17).

    "As before" forces the paths the report took before issue 17, which still exist: every
    bootstrap gathers the drawn prompts itself (no shared draw counts), judgments are read
    with the judges' own texts, and no table reuses another's collapsed comparisons or
    prompt numbering. (scipy.stats is not re-imported: `startup.py` measures that part.)
    """
    from brie_bench.report import model
    from brie_bench.stats import draws, intervals
    from brie_bench.report.rows import load_run

    def timed(fast: bool) -> float:
        exact = intervals._exact_in_float32
        draws._DRAWS.clear()
        if not fast:
            intervals._exact_in_float32 = lambda *a: False  # type: ignore[assignment]
        t0 = time.process_time()
        try:
            with Store(db, readonly=True) as store:
                data = load_run(store, run_id, texts=not fast)
            (model.build_report_from_data if fast else model._build_report)(data)
        finally:
            intervals._exact_in_float32 = exact  # type: ignore[assignment]
        return time.process_time() - t0

    return timed(True), timed(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judgments", type=int, default=10_000)
    parser.add_argument("--no-html", action="store_true", help="time `report --json` only")
    parser.add_argument("--no-compare", action="store_true",
                        help="skip the in-process comparison with the pre-issue-17 paths")
    args = parser.parse_args()
    target_s = 1.0 if args.judgments <= 10_000 else 3.0
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "scale.db"
        t0 = time.perf_counter()
        run_id = build(db, args.judgments)
        built = time.perf_counter() - t0
        with Store(db, readonly=True) as store:
            n = store.count_judgments(run_id)
        json_s, json_cpu = timed_report(db, run_id, "--json", str(Path(tmp) / "report.json"))
        print(f"built {n} judgments in {built:.1f}s; report --json {json_s:.2f}s wall, {json_cpu:.2f}s CPU")
        html = ""
        if not args.no_html:
            out = Path(tmp) / "report.html"
            html_s, html_cpu = timed_report(db, run_id, "--html", str(out))
            size_mb = out.stat().st_size / 1e6
            print(f"report --html {html_s:.2f}s wall, {html_cpu:.2f}s CPU, {size_mb:.2f} MB")
            html = (f" html_seconds={html_s:.2f} html_cpu_seconds={html_cpu:.2f} size_mb={size_mb:.2f} "
                    "html_target_s=10 html_target_mb=25")
        compare = ""
        if not args.no_compare:
            now_cpu, before_cpu = side_by_side(db, run_id)
            print(f"in this process, load + statistics: {now_cpu:.2f}s CPU, {before_cpu:.2f}s CPU on the "
                  f"pre-issue-17 paths: {before_cpu / now_cpu:.2f}x")
            compare = f" inprocess_cpu_seconds={now_cpu:.2f} inprocess_before_cpu_seconds={before_cpu:.2f}"
        print(f"RESULT report_seconds={json_s:.2f} report_cpu_seconds={json_cpu:.2f}{html}{compare} judgments={n} "
              f"target_s={target_s:g}")


if __name__ == "__main__":
    main()
