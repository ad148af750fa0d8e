"""Start-up time of the commands a person runs most: `brie-bench --help` and `report --json`.

A report over a small run is almost all imports: what matters is what the CLI
imports before it can answer. Each command runs as a fresh process (the way a
person meets it), several times, interleaved; the median is reported.

    python benchmarks/startup.py [--repeats 7]

Ends with: RESULT report_json_seconds=... help_seconds=... python_seconds=... (and the same as
*_cpu_seconds: user + system time) target_report_s=0.35 target_help_s=0.3 load_before=... load_after=...
(the 1-minute load average, as `uptime` shows it: wall times are only comparable on a quiet machine).
"""

from __future__ import annotations

import argparse
import resource
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report_scale import build  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh process; CPU is user + system time of the child.

    On a quiet machine the two agree for these single-threaded commands; on a shared one
    the wall time also counts waiting for a core, and the CPU time is the better guide.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "small.db"
        build(db, 9)  # the smallest synthetic run: one prompt per section, 20 judgments
        commands = {
            "python": [sys.executable, "-c", "pass"],
            "help": [sys.executable, "-m", "brie_bench", "--help"],
            "report_json": [sys.executable, "-m", "brie_bench", "--db", str(db), "report", "--json"],
            # What the statistics imported before issue 17, and what they import now.
            "scipy_stats": [sys.executable, "-c", "import numpy, scipy.stats, scipy.optimize"],
            "scipy_special": [sys.executable, "-c", "import numpy, scipy.special"],
        }
        for argv in commands.values():  # warm the bytecode cache and the OS file cache
            timed(argv, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, argv in commands.items():
                wall, used = timed(argv, env)
                times[name].append(wall)
                cpu[name].append(used)
    med = {name: statistics.median(values) for name, values in times.items()}
    med_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    for name, value in med.items():
        print(f"{name:12s} median {value:.3f}s wall, {med_cpu[name]:.3f}s CPU over {args.repeats} runs")
    print(f"RESULT report_json_seconds={med['report_json']:.3f} help_seconds={med['help']:.3f} "
          f"python_seconds={med['python']:.3f} report_json_cpu_seconds={med_cpu['report_json']:.3f} "
          f"help_cpu_seconds={med_cpu['help']:.3f} python_cpu_seconds={med_cpu['python']:.3f} "
          f"scipy_stats_import_cpu_seconds={med_cpu['scipy_stats']:.3f} "
          f"scipy_special_import_cpu_seconds={med_cpu['scipy_special']:.3f} "
          f"target_report_s=0.35 target_help_s=0.3 load_before={load_before:.2f} load_after={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
