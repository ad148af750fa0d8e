"""Judging against the peers: brie-bench, Inspect AI and promptfoo against a bare SDK loop.

Issue 17 quotes a side-by-side comparison (N=320 judge calls, concurrency 16, a 200 ms
server): whole-process time relative to a bare `openai.AsyncOpenAI` loop, brie-bench
1.11x, promptfoo 1.45x, Inspect AI 1.93x. This script re-measures it, in one process
run, so the ratios hold on a noisy machine. One loopback OpenAI-compatible server
(`brie_bench.testing.loopback.LoopbackProvider`, in this process) answers every call to
the model `judge` after L seconds with a short verdict ("Reasoning: ...\\nWinner: A");
the contenders brie-bench judges are other model names, answered at once. Each tool runs
as a fresh subprocess, timed from spawn to exit (imports included):

* bare: a tiny script, `openai.AsyncOpenAI` + `asyncio.Semaphore(C)`, N chat completions;
* brie: `python -m brie_bench --db X run SUITE --new --concurrency C`, the suite of
  `judge_throughput.py` (N prompts, two contenders, one `llm` judge on the loopback),
  answers already stored by an untimed warm-up run, so the process judges only;
* inspect: `inspect_ai.eval()` of an N-sample task, `generate()` and an `includes()`
  scorer, `model="openai/judge"` with `model_base_url` at the loopback, max_connections=C,
  logging to a temporary folder; with `responses_api=False`, as Inspect 0.3.285 otherwise
  sent this model to `/v1/responses` (which the loopback does not serve; the others use
  chat completions);
* promptfoo: `promptfoo eval` of N tests against `openai:chat:judge` with `apiBaseUrl` at
  the loopback, `maxConcurrency: C`, cache off (`--no-cache`, PROMPTFOO_CACHE_ENABLED=false),
  telemetry, update check, sharing and remote generation off, its config folder temporary.

Rounds are interleaved (each tool once per round, the order rotated), after one untimed
warm-up round (file caches, brie's stored answers, promptfoo's database); the median of
the rounds is reported. A tool's round counts only if the server saw exactly N calls to
`judge` while it ran (and the tool itself reports N answers): one that cached, failed or
retried would otherwise get a flattering, or unfair, time. The server's own span (first
request in to last answer out) is printed beside the wall time, with the calls in flight at
most and on average over it (C for a client that keeps every slot busy). The child
processes get HTTP(S)_PROXY at a closed loopback port (NO_PROXY=127.0.0.1), so a
proxy-aware client that tried to reach beyond the loopback would fail rather than leave.

Prerequisites, installed by hand, outside the project's dependencies (the script never
installs anything and reaches nothing but 127.0.0.1):

    python -m venv /tmp/peers/inspect-venv && /tmp/peers/inspect-venv/bin/pip install inspect-ai
    mkdir -p /tmp/peers/promptfoo && cd /tmp/peers/promptfoo && echo '{"private":true}' > package.json \\
        && npm install promptfoo

A tool whose prerequisite is missing is skipped, said so, and reported as `nan`. The last
line is machine-readable:

    RESULT bare_s=<s> brie_ratio=<r> inspect_ratio=<r> promptfoo_ratio=<r> calls=320 concurrency=16
           latency_s=0.2 ... load_before=<l> load_after=<l>

Run: python benchmarks/peers.py [--calls 320] [--concurrency 16] [--latency 0.2] [--rounds 5]
     [--inspect-python PATH] [--promptfoo PATH] [--tools bare,brie,inspect,promptfoo]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # judge_throughput's helpers, by import
try:
    import brie_bench  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))
from judge_throughput import suite_file

from brie_bench.store import Store
from brie_bench.testing.loopback import Call, LoopbackProvider

JUDGE = "judge"
VERDICT = "Reasoning: both are fine.\nWinner: A"
TOOLS = ("bare", "brie", "inspect", "promptfoo")

BARE = """\
import asyncio, sys
import openai

async def main(n: int, c: int, url: str) -> None:
    client = openai.AsyncOpenAI(base_url=url, api_key="loopback", max_retries=0)
    sem = asyncio.Semaphore(c)

    async def one(i: int) -> str:
        async with sem:
            r = await client.chat.completions.create(
                model="judge", max_tokens=64,
                messages=[{"role": "user", "content": f"Prompt {i}: which answer is better, A or B?"}])
            return r.choices[0].message.content or ""

    answers = await asyncio.gather(*(one(i) for i in range(n)))
    print("ANSWERS", sum("Winner" in a for a in answers))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
"""

INSPECT = """\
import sys
from inspect_ai import Task, eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate

n, c, url, log_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
task = Task(dataset=[Sample(input=f"Prompt {i}: which answer is better, A or B?", target="Winner")
                     for i in range(n)],
            solver=generate(), scorer=includes())
log = inspect_eval(task, model="openai/judge", model_base_url=url, model_args={"responses_api": False},
                   max_connections=c, max_tokens=64,
                   log_dir=log_dir, display="none")[0]
ok = sum(1 for s in (log.samples or []) if s.error is None and "Winner" in (s.output.completion or ""))
print("ANSWERS", ok if log.status == "success" else -1, log.status)
if log.error is not None:
    print(log.error.message, log.error.traceback[-1500:], file=sys.stderr)
"""


def responder(latency_s: float, log: list[tuple[float, float]], lock: threading.Lock) -> Callable[[Call], str]:
    """Calls to `judge` wait `latency_s` and answer a verdict (logged); the contenders answer at once."""

    def respond(call: Call) -> str:
        if call.model == JUDGE:
            arrived = time.time()
            time.sleep(latency_s)
            with lock:
                log.append((arrived, time.time()))
            return VERDICT
        return f"{call.model} on {call.prompt[:40]}"

    return respond


@dataclass
class Tool:
    """One contender in the comparison: how to start it, and how to read what it says it did."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    check: Callable[[subprocess.CompletedProcess[str]], int] | None = None  # answers it reports
    skipped: str | None = None
    walls: list[float] = field(default_factory=list)
    spans: list[float] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)
    mean_in_flight: list[float] = field(default_factory=list)  # calls in flight on average over the span
    problems: list[str] = field(default_factory=list)


def answers_line(done: subprocess.CompletedProcess[str]) -> int:
    """The `ANSWERS k` line the bare and the Inspect scripts print."""
    for line in done.stdout.splitlines():
        if line.startswith("ANSWERS"):
            return int(line.split()[1])
    return -1


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The parent's environment, the tool's settings, and any proxy-aware client kept off the network."""
    env = dict(os.environ)
    env.update({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
                "OPENAI_API_KEY": "loopback", "PYTHONDONTWRITEBYTECODE": "1"})
    env.pop("OPENAI_BASE_URL", None)
    env.update(extra)
    return env


def build_tools(args: argparse.Namespace, srv: LoopbackProvider, folder: Path) -> list[Tool]:
    n, c, url = args.calls, args.concurrency, srv.openai_url
    wanted = set(args.tools.split(","))
    tools: list[Tool] = []

    bare = folder / "bare_loop.py"
    bare.write_text(BARE, encoding="utf-8")
    tools.append(Tool("bare", [sys.executable, str(bare), str(n), str(c), url], check=answers_line))

    suite = suite_file(folder, srv, n, c, "peers")
    db = folder / "brie.db"

    def brie_check(done: subprocess.CompletedProcess[str]) -> int:
        with Store(db, readonly=True) as store:
            run_id = store.run().id
            (count,) = store.conn.execute("SELECT COUNT(*) FROM judgments WHERE run_id=?", (run_id,)).fetchone()
        return int(count)

    tools.append(Tool("brie", [sys.executable, "-m", "brie_bench", "--db", str(db), "run", str(suite), "--new",
                               "--concurrency", str(c)], check=brie_check))

    inspect_py = Path(args.inspect_python)
    script = folder / "inspect_task.py"
    script.write_text(INSPECT, encoding="utf-8")
    tool = Tool("inspect", [str(inspect_py), str(script), str(n), str(c), url, str(folder / "inspect-logs")],
                env={"INSPECT_DISPLAY": "none", "INSPECT_LOG_LEVEL": "warning"}, check=answers_line)
    if not inspect_py.exists():
        tool.skipped = f"no Python with inspect-ai at {inspect_py} (see the prerequisites)"
    tools.append(tool)

    pf = Path(args.promptfoo)
    config = folder / "promptfooconfig.yaml"
    out = folder / "promptfoo-out.json"
    config.write_text(yaml.safe_dump({
        "description": "peers", "prompts": ["{{q}}"],
        "providers": [{"id": f"openai:chat:{JUDGE}",
                       "config": {"apiBaseUrl": url, "apiKey": "loopback", "max_tokens": 64}}],
        "defaultTest": {"assert": [{"type": "contains", "value": "Winner"}]},
        "tests": [{"vars": {"q": f"Prompt {i}: which answer is better, A or B?"}} for i in range(n)],
        "evaluateOptions": {"maxConcurrency": c, "cache": False},
    }, sort_keys=False), encoding="utf-8")

    def pf_check(done: subprocess.CompletedProcess[str]) -> int:
        data = json.loads(out.read_text(encoding="utf-8"))
        rows = data["results"]["results"]
        out.unlink()
        return sum(1 for r in rows if r.get("success") and not r.get("error"))

    tool = Tool("promptfoo", [str(pf), "eval", "-c", str(config), "--no-cache", "--max-concurrency", str(c),
                              "-o", str(out), "--no-progress-bar", "--no-table"],
                env={"PROMPTFOO_CACHE_ENABLED": "false", "PROMPTFOO_DISABLE_TELEMETRY": "1",
                     "PROMPTFOO_DISABLE_UPDATE": "1", "PROMPTFOO_DISABLE_SHARING": "1",
                     "PROMPTFOO_DISABLE_REMOTE_GENERATION": "1", "PROMPTFOO_DISABLE_REDTEAM_REMOTE_GENERATION": "1",
                     "PROMPTFOO_CONFIG_DIR": str(folder / "promptfoo-home"), "PROMPTFOO_SELF_HOSTED": "1",
                     "PROMPTFOO_DISABLE_RUNTIME_WARNINGS": "1"},
                check=pf_check)
    if not pf.exists():
        tool.skipped = f"no promptfoo at {pf} (npm install failed or not done; see the prerequisites)"
    tools.append(tool)
    for tool in tools:
        if tool.name not in wanted:
            tool.skipped = tool.skipped or "not in --tools"
    return tools


def run_once(tool: Tool, srv: LoopbackProvider, log: list[tuple[float, float]], n: int, timed: bool) -> None:
    """Start the tool in a fresh process, time it, and keep the time only if the server saw exactly N calls."""
    seen = len(log)
    srv.max_in_flight = 0
    started = time.perf_counter()
    done = subprocess.run(tool.argv, check=False, capture_output=True, text=True, cwd=str(ROOT),
                          env=child_env(tool.env), timeout=600)
    wall = time.perf_counter() - started
    served = log[seen:]
    problem = None
    if done.returncode != 0:
        problem = f"exit {done.returncode}: {(done.stderr or done.stdout)[-1500:]}"
    else:
        reported = tool.check(done) if tool.check else n
        if len(served) != n or reported != n:
            problem = (f"the server saw {len(served)} calls to {JUDGE!r}, the tool reported {reported} answers "
                       f"(expected {n}); stdout tail: {done.stdout[-500:]!r} stderr tail: {done.stderr[-500:]!r}")
    if problem is not None:
        tool.problems.append(problem)
        print(f"  {tool.name:9s} {'round' if timed else 'warm-up'}: NOT counted: {problem}", flush=True)
        return
    span = max(b for _, b in served) - min(a for a, _ in served)
    mean = sum(b - a for a, b in served) / span
    print(f"  {tool.name:9s} {'round' if timed else 'warm-up'}: {wall:6.2f} s wall, server span {span:5.2f} s, "
          f"{len(served)} calls, at most {srv.max_in_flight} in flight, {mean:.1f} on average", flush=True)
    if timed:
        tool.walls.append(wall)
        tool.spans.append(span)
        tool.in_flight.append(srv.max_in_flight)
        tool.mean_in_flight.append(mean)


def version_of(tool: Tool, args: argparse.Namespace) -> str:
    """The version each side ran, for the printout."""
    try:
        if tool.name == "inspect":
            return subprocess.run([args.inspect_python, "-c", "import inspect_ai, openai; "
                                   "print(inspect_ai.__version__, 'openai', openai.__version__)"],
                                  capture_output=True, text=True, timeout=60).stdout.strip()
        if tool.name == "promptfoo":
            pkg = Path(args.promptfoo).parent.parent / "promptfoo" / "package.json"  # node_modules/.bin/..
            node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
            return f"{json.loads(pkg.read_text())['version']} (node {node})"
        if tool.name == "brie":
            from brie_bench.runtime import versions
            return str(versions().get("brie_bench", "?"))
        import openai
        return f"openai {openai.__version__}"
    except Exception as exc:  # a version we cannot read does not stop the benchmark
        return f"? ({exc!r})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=320, help="judging calls per tool (N)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent calls (C)")
    parser.add_argument("--latency", type=float, default=0.2, help="the server's latency in seconds (L)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, each tool once per round")
    parser.add_argument("--inspect-python", default="/tmp/peers/inspect-venv/bin/python",
                        help="a Python with inspect-ai installed")
    parser.add_argument("--promptfoo", default="/tmp/peers/promptfoo/node_modules/.bin/promptfoo",
                        help="the promptfoo command")
    parser.add_argument("--tools", default=",".join(TOOLS), help="which tools to run (bare always runs)")
    args = parser.parse_args(argv)
    args.tools += ",bare"
    n, c, lat = args.calls, args.concurrency, args.latency
    load_before = os.getloadavg()[0]
    log: list[tuple[float, float]] = []
    lock = threading.Lock()

    with tempfile.TemporaryDirectory(prefix="brie-peers-") as tmp, \
            LoopbackProvider(responder(lat, log, lock), max_lifetime_s=3600) as srv:
        tools = build_tools(args, srv, Path(tmp))
        active = [t for t in tools if t.skipped is None]
        for t in tools:
            if t.skipped:
                print(f"{t.name}: skipped: {t.skipped}")
        print(f"N={n} calls, C={c}, L={lat * 1000:.0f} ms; lower bound ceil(N/C)*L = {-(-n // c) * lat:.2f} s; "
              f"{args.rounds} rounds after a warm-up", flush=True)
        print("warm-up (untimed)", flush=True)
        for t in active:
            run_once(t, srv, log, n, timed=False)
        requests_before, calls_before = len(srv.requests), len(log)
        for r in range(args.rounds):
            order = active[r % len(active):] + active[:r % len(active)]
            print(f"round {r + 1}: " + ", ".join(t.name for t in order), flush=True)
            for t in order:
                run_once(t, srv, log, n, timed=True)
        versions_seen = {t.name: version_of(t, args) for t in tools}
        extra = (len(srv.requests) - requests_before) - (len(log) - calls_before)
    load_after = os.getloadavg()[0]
    if extra:
        print(f"note: the server saw {extra} requests beyond the judging calls in the timed rounds")

    med = {t.name: statistics.median(t.walls) if t.walls else float("nan") for t in tools}
    span = {t.name: statistics.median(t.spans) if t.spans else float("nan") for t in tools}
    bare_s, bare_span = med["bare"], span["bare"]
    print(f"\nmedian of {args.rounds} rounds (whole process, spawn to exit), ratio to the bare loop:")
    for t in tools:
        if t.skipped or not t.walls:
            why = t.skipped or f"no clean round: {t.problems[-1][:300] if t.problems else '?'}"
            print(f"  {t.name:9s}      n/a  ({why})")
            continue
        print(f"  {t.name:9s} {med[t.name]:6.2f} s = {med[t.name] / bare_s:5.2f}x  "
              f"(rounds: {', '.join(f'{w:.2f}' for w in t.walls)}; server span {span[t.name]:.2f} s = "
              f"{span[t.name] / bare_span:.2f}x; at most {max(t.in_flight)} in flight, "
              f"{statistics.median(t.mean_in_flight):.1f} on average)  {versions_seen[t.name]}")

    def ratio(name: str) -> str:
        return f"{med[name] / bare_s:.2f}" if med[name] == med[name] else "nan"

    def span_ratio(name: str) -> str:
        return f"{span[name] / bare_span:.2f}" if span[name] == span[name] else "nan"

    print(f"RESULT bare_s={bare_s:.2f} brie_ratio={ratio('brie')} inspect_ratio={ratio('inspect')} "
          f"promptfoo_ratio={ratio('promptfoo')} brie_s={med['brie']:.2f} inspect_s={med['inspect']:.2f} "
          f"promptfoo_s={med['promptfoo']:.2f} brie_server_ratio={span_ratio('brie')} "
          f"inspect_server_ratio={span_ratio('inspect')} promptfoo_server_ratio={span_ratio('promptfoo')} "
          f"calls={n} concurrency={c} latency_s={lat:g} rounds={args.rounds} "
          f"load_before={load_before:.2f} load_after={load_after:.2f}")


if __name__ == "__main__":
    main()
