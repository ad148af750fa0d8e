"""Resume overhead: rerunning a finished 1,000-judgment run must call nothing and plan fast.

A suite of 1,000 prompts (two contenders, one `llm` judge, all on a loopback provider
through the `openai` backend) is run to the end: 2,000 generations and 1,000 judgments
stored. Then the same command is run again, the way a user resumes: the figures are the
model calls that rerun made (must be 0, counted both by the engine's summary and by the
server's request log), its wall time, and the part of it spent planning (loading the
suite, building the plugins and the plan, and looking up what is stored). The last line
is machine-readable:

    RESULT resume_model_calls=<n> resume_seconds=<s> planning_seconds=<p> judgments=<j>

Run: python benchmarks/resume_overhead.py [--prompts 1000]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

try:
    from brie_bench.plugin_manager import load_plugins
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from brie_bench.plugin_manager import load_plugins
from brie_bench.plan import build_plan
from brie_bench.run import execute_run
from brie_bench.runtime import build_runtime
from brie_bench.store import Store
from brie_bench.suite import load_suite
from brie_bench.testing.loopback import Call, LoopbackProvider


def respond(call: Call) -> str:
    if "<response_a>" in call.prompt:
        return "Reasoning: fine.\nWinner: " + ("A" if len(call.prompt) % 2 else "B")
    return f"{call.model} on {call.prompt[:40]}"


def write_suite(folder: Path, srv: LoopbackProvider, prompts: int) -> Path:
    limits = {"max_concurrency": 32}

    def contender(model: str) -> dict[str, Any]:
        return {"backend": "openai", "model": model, "limits": limits,
                "options": {"base_url": srv.openai_url, "require_key": False}}

    per_section = 100
    sections = [{"name": f"section-{s}",
                 "prompts": [f"Prompt {s}.{i}: say something about {i}." for i in
                             range(min(per_section, prompts - s * per_section))]}
                for s in range(-(-prompts // per_section))]
    data = {"name": "resume-overhead", "seed": 5, "baseline": "baseline",
            "contenders": {"baseline": contender("base"), "brie": contender("brie")},
            "judges": {"judge": {"type": "llm", "backend": "openai", "model": "judge", "limits": limits,
                                 "backend_options": {"base_url": srv.openai_url, "require_key": False}}},
            "defaults": {"max_tokens": 64}, "sections": sections}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run(path: Path, db: Path) -> tuple[int, str, float]:
    out = io.StringIO()
    started = time.perf_counter()
    code = execute_run(load_suite(path), load_plugins(None), db=str(db),
                       console=Console(file=out, width=300, color_system=None))
    return code, out.getvalue(), time.perf_counter() - started


def planning_seconds(path: Path, db: Path) -> tuple[float, int]:
    """What a resume does before any call: load, build plugins and plan, look up stored units."""
    started = time.perf_counter()
    suite = load_suite(path)
    runtime = build_runtime(suite, load_plugins(None))
    plan = build_plan(suite, runtime.contenders, runtime.judges, suite.spec.seed)
    with Store(db) as store:
        run_id = store.find_resumable_run(suite.fingerprint(), suite.spec.seed)
        assert run_id is not None
        stored_gen = store.stored_generation_keys([u.key for u in plan.generations])
        stored_judg = store.stored_judgment_keys(run_id)
    seconds = time.perf_counter() - started
    missing = (len(plan.generations) - len(stored_gen)) + sum(1 for u in plan.judgments if u.key not in stored_judg)
    return seconds, missing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=1000, help="prompts, hence judgments (one judge, one order)")
    args = parser.parse_args(argv)
    os.environ.setdefault("BRIE_BENCH_RETRY_BASE_S", "0.05")
    with tempfile.TemporaryDirectory(prefix="brie-resume-bench-") as tmp, \
            LoopbackProvider(respond, max_lifetime_s=3600) as srv:
        folder = Path(tmp)
        db = folder / "bench.db"
        path = write_suite(folder, srv, args.prompts)
        code, first, first_s = run(path, db)
        if code != 0:
            raise SystemExit(f"the first run failed:\n{first}")
        calls_first = len(srv.requests)
        code, again, rerun_s = run(path, db)
        calls_rerun = len(srv.requests) - calls_first
        summary = re.search(r"judgments: (\d+) new, (\d+) stored.*?model calls: (\d+)", " ".join(again.split()))
        if code != 0 or summary is None:
            raise SystemExit(f"the rerun failed:\n{again}")
        new, stored, engine_calls = map(int, summary.groups())
        plan_s, missing = planning_seconds(path, db)
        db_mb = db.stat().st_size / 1e6
    print(f"first run: {calls_first} model calls ({2 * args.prompts} generations, {args.prompts} judgments) "
          f"in {first_s:.1f} s; database {db_mb:.1f} MB")
    print(f"rerun of the finished run: {engine_calls} model calls by the engine's count, {calls_rerun} requests "
          f"seen by the server; {new} judgments new, {stored} already stored")
    print(f"rerun wall time {rerun_s:.2f} s, of which planning (suite, plugins, plan, stored-key lookups) "
          f"{plan_s:.2f} s; units left to do: {missing}")
    calls = max(engine_calls, calls_rerun)
    print("target " + ("met" if calls == 0 else "NOT met") + ": a rerun makes no model calls")
    print(f"RESULT resume_model_calls={calls} resume_seconds={rerun_s:.3f} planning_seconds={plan_s:.3f} "
          f"judgments={stored}")


if __name__ == "__main__":
    main()
