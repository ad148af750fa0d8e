"""Serve a local model with `transformers serve` under a short, stable name.

Why it exists: `transformers serve` is a real OpenAI-compatible server that
Brie Bench did not write, so a suite can reach it through the `openai` backend
with `base_url`, exactly as it would reach vLLM or a provider. It names a model
by the path it was loaded from, and a pinned server refuses any other name;
a suite cannot hold a path into someone's cache. So this launcher gives the
model a short name (``smollm2-135m-instruct``): it makes a private folder that
holds one symbolic link of that name to the model's folder, and starts the
server there, pinned to that relative name.

It resolves the same ids as the `hf` backend: real models
(``smollm2:135m-instruct``), tiny ones (``tiny:qwen2``) and local folders.

The server never outlives its owner: it dies with the process that started it
(Linux parent-death signal), after ``lifetime_s`` seconds, and on `stop()`.

Command line (what the README's laptop evaluation runs)::

    python -m brie_bench.local_server smollm2:135m-instruct --port 8011 -- brie-bench run suites/mini_brie.yaml

starts the server, waits until the model answers, runs the command, and stops the
server when the command ends (exit code: the command's). Without ``-- COMMAND`` it
serves until Ctrl-C or ``--lifetime`` seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO
from collections.abc import Sequence

from brie_bench import real_models

from brie_bench.testing import tiny
from brie_bench.errors import InputError

__all__ = ["served_name", "model_folder", "LocalServer", "main"]

#: Threads the server computes with by default. On a laptop the evaluating process runs its own
#: models at the same time; two processes that each spin two OpenMP threads on two cores
#: slowed a 135M model's decoding about fourfold here.
DEFAULT_THREADS = 1


def served_name(model_id: str) -> str:
    """The name a suite uses for `model_id`: ``smollm2:135m-instruct`` -> ``smollm2-135m-instruct``."""
    base = Path(model_id).name if not (tiny.is_tiny(model_id) or real_models.is_real(model_id)) else model_id
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.")
    if not name:
        raise InputError(f"cannot name model {model_id!r} for serving", field="model")
    return name


def model_folder(model_id: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The local folder of a real id, tiny id or folder path (built on first use)."""
    if real_models.is_real(model_id):
        return real_models.resolve(model_id, cache_dir)
    if tiny.is_tiny(model_id):
        return tiny.resolve(model_id, cache_dir)
    folder = Path(model_id).expanduser()
    if not folder.is_dir():
        raise InputError(f"model folder {model_id!r} does not exist (give a folder, a tiny: or smollm2: id)",
                         field="model")
    return folder.resolve()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM the server when the process that started it dies."""
    os.setsid()  # its own process group: stop() signals the server and nothing else
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalServer:
    """One `transformers serve` process pinned to one model, on 127.0.0.1.

    Usage::

        with LocalServer("tiny:qwen2") as srv:
            ...  # base_url=srv.base_url, model=srv.model
    """

    def __init__(self, model_id: str, *, port: int | None = None, host: str = "127.0.0.1",
                 cache_dir: str | os.PathLike[str] | None = None, threads: int | None = DEFAULT_THREADS,
                 lifetime_s: float | None = 1800.0, start_timeout_s: float = 300.0,
                 log_path: str | os.PathLike[str] | None = None) -> None:
        self.model_id = model_id
        self.model = served_name(model_id)
        self.host = host
        self.port = port or free_port(host)
        self.cache_dir = cache_dir
        self.threads = threads
        self.lifetime_s = lifetime_s
        self.start_timeout_s = start_timeout_s
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._timer: threading.Timer | None = None
        self._log: BinaryIO | None = None

    @property
    def base_url(self) -> str:
        """What a suite puts in `base_url` (with /v1)."""
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        """The server's command line; this interpreter's transformers, not whichever script is on PATH."""
        # This interpreter's transformers (not whichever `transformers` script is first on PATH).
        return [sys.executable, "-m", "transformers.cli.transformers", "serve", self.model,
                "--host", self.host, "--port", str(self.port), "--log-level", "warning", "--dtype", "float32"]

    def start(self) -> LocalServer:
        """Start the server and wait until it answers /health with the model loaded."""
        if self.process is not None:
            return self
        _check_serving_installed()
        folder = model_folder(self.model_id, self.cache_dir)
        self._workdir = Path(tempfile.mkdtemp(prefix="brie-serve-"))
        (self._workdir / self.model).symlink_to(folder, target_is_directory=True)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_NO_ADVISORY_WARNINGS="1")
        if self.threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        self._log = open(self.log_path, "ab") if self.log_path else open(self._workdir / "server.log", "ab")
        self.process = subprocess.Popen(self.command(), cwd=self._workdir, env=env, stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        preexec_fn=_die_with_parent if os.name == "posix" else None)
        if self.lifetime_s:
            self._timer = threading.Timer(self.lifetime_s, self.stop)
            self._timer.daemon = True
            self._timer.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        url = f"http://{self.host}:{self.port}/v1/models"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited with code {self.process.returncode}: "
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - loopback only
                    if self.model.encode() in reply.read():
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"transformers serve did not answer within {self.start_timeout_s:.0f} s: "
                           f"{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        """The end of the server's log (for error messages)."""
        path = self.log_path or (self._workdir / "server.log" if self._workdir else None)
        try:
            return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:]) if path else ""
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and remove its folder. Safe to call twice."""
        proc, self.process = self.process, None
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check_serving_installed() -> None:
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"`transformers serve` needs {' and '.join(missing)}: pip install 'transformers[serving]'",
                         field="model")


def main(argv: Sequence[str] | None = None) -> int:
    """Serve MODEL; with `-- COMMAND...`, run the command once the model is loaded and stop after it.

    Without a command it serves until killed or until --lifetime seconds have passed.
    With one, the exit code is the command's: what `&&` after it sees.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m brie_bench.local_server", description=main.__doc__)
    parser.add_argument("model", help="smollm2:135m-instruct, a tiny: id, or a model folder")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="torch threads of the server (0: torch's default)")
    parser.add_argument("--lifetime", type=float, default=None,
                        help="stop after this many seconds (default: 1800 without a command, none with one)")
    parser.add_argument("--log", default=None, help="append the server's log to this file")
    parser.epilog = "-- COMMAND...: run the command against the server, then stop it"
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    lifetime = args.lifetime if args.lifetime is not None else (None if command else 1800.0)
    try:
        server = LocalServer(args.model, port=args.port, host=args.host, threads=args.threads or None,
                             lifetime_s=lifetime, log_path=args.log)
        server.start()
    except (InputError, RuntimeError, TimeoutError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"serving {args.model} as model {server.model!r} at {server.base_url}", file=sys.stderr, flush=True)
    try:
        if command:
            return subprocess.call(command)
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
