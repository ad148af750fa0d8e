"""How long the HTML report takes, and how big it gets, for a run with 10,000 judgments.

Builds a synthetic run directly in a temporary store (no models, no engine):
2,000 prompts in four sections, one of them judged in both orders, four judges
with per-criterion scores and realistic answer lengths (about 0.4–1.4 KB per
answer, 0.3–0.6 KB per judge answer). Then times load + statistics + render +
write of `brie-bench report --html` and prints the file size.

    python benchmarks/report_scale.py [--judgments 10000]

Ends with: RESULT report_seconds=... size_mb=... target_s=10 target_mb=25
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brie_bench.report.html import write_html  # noqa: E402
from brie_bench.report.model import build_report_from_data  # noqa: E402
from brie_bench.report.rows import load_run  # noqa: E402
from brie_bench.store import Store  # noqa: E402

WORDS = ("being time world care anxiety silence dawn river stone breath light thought other face "
         "gift absence presence language body memory desire ethics freedom horizon question").split()
CRITERIA = ("creativity", "coherence", "depth", "engagement", "writing_quality")
JUDGES = ("claude", "gpt", "gemini", "local")


def words(rng: np.random.Generator, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(lo, hi))).tolist())


def build(db: Path, n_judgments: int, seed: int = 0) -> str:
    """Create one run with about `n_judgments` judgments; returns its id."""
    rng = np.random.default_rng(seed)
    per_prompt = len(JUDGES) * 1.25  # three sections single order, one both orders
    n_prompts = int(round(n_judgments / per_prompt))
    sections = [("philosophy", "one"), ("contemplative", "one"), ("creative", "one"), ("brainstorming", "both")]
    prompts = {name: [(f"{name}-{i + 1}", f"Question {i}: " + words(rng, 8, 30)) for i in range(n_prompts // 4)]
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
        run_id = store.create_run(suite_name="scale", suite_path="scale.yaml", fingerprint="scale", snapshot=snapshot,
                                  seed=seed, versions={"brie_bench": "bench"}, metadata=meta)
        gens, links, judgments = [], [], []
        now = time.time()
        for name, orders in sections:
            for pid, text in prompts[name]:
                keys = {}
                for contender, lo, hi in (("baseline", 60, 180), ("brie", 80, 220)):
                    key = f"{contender}-{name}-{pid}"
                    keys[contender] = key
                    gens.append((key, "synthetic", contender, "{}", json.dumps([{"role": "user", "content": text}]),
                                 "{}", 0, words(rng, lo, hi), "stop", 30, 200, 1.0, now))
                    links.append((run_id, name, pid, 0, contender, key))
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
                        judgments.append((run_id, f"{judge}-{name}-{pid}-{order}", name, pid, 0, judge, "llm",
                                          f"{judge}-model", "baseline", "brie", order, a, b, keys[a], keys[b], verdict,
                                          winner, None, json.dumps(scores), None,
                                          "no verdict line" if verdict == "invalid" else None, raw, 800, 120, 2.0,
                                          now))
        with store.conn:
            store.conn.executemany("INSERT INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", gens)
            store.conn.executemany("INSERT INTO run_generations VALUES (?,?,?,?,?,?)", links)
            store.conn.executemany(
                "INSERT INTO judgments(run_id, unit_key, section, prompt_id, sample_index, judge, judge_type, "
                "judge_model, baseline, candidate, order_index, label_a, label_b, gen_key_a, gen_key_b, verdict, "
                "winner, p_a, scores, reasoning, invalid_reason, raw, input_tokens, output_tokens, latency_s, "
                "created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", judgments)
        store.mark_run(run_id, "complete")
    return run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judgments", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "scale.db"
        t0 = time.perf_counter()
        run_id = build(db, args.judgments)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        with Store(db, readonly=True) as store:
            data = load_run(store, run_id)
        report = build_report_from_data(data)
        t_stats = time.perf_counter() - t0
        out = write_html(report, data, Path(tmp) / "report.html")
        seconds = time.perf_counter() - t0
        size_mb = out.stat().st_size / 1e6
        print(f"built {len(data.rows)} judgments in {built:.1f}s; load+stats {t_stats:.2f}s, "
              f"render+write {seconds - t_stats:.2f}s")
        print(f"RESULT report_seconds={seconds:.2f} size_mb={size_mb:.2f} target_s=10 target_mb=25")


if __name__ == "__main__":
    main()
