"""Provenance: `brie_manifest.json`, written next to the adapter.

An evaluation report is only as trustworthy as what it can say about the
model under test. The manifest records what went into the adapter (base model
and revision, the full config, a sha256 of every data file, library
versions, the project's git commit) and what came out (steps, losses,
adapter size), so `brie-bench run` can store it and the report can show it.
"""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from brie_bench.atomic import write_text
from brie_bench.errors import InputError

MANIFEST_NAME = "brie_manifest.json"
MANIFEST_FORMAT = "brie-bench/training-manifest"
MANIFEST_VERSION = 1
#: Libraries whose versions change what a run produces.
LIBRARIES = ("brie-bench", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "tokenizers",
             "safetensors")
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that matter, plus Python itself."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(folder: str | Path) -> dict[str, Any] | None:
    """The commit (and whether the tree is dirty) of the git checkout holding `folder`, or None."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10,
                                 check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def write_manifest(adapter_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write the manifest atomically (a crash never leaves half a JSON file)."""
    folder = Path(adapter_dir)
    folder.mkdir(parents=True, exist_ok=True)
    body = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, **manifest}
    target = folder / MANIFEST_NAME
    text = json.dumps(body, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n"
    write_text(target, text)  # brie_bench.atomic: temp file, fsync, rename; never through a link
    return target


def read_manifest(adapter_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of a local adapter folder, or None when there is none.

    Returns None for anything that is not a local folder (a Hub id such as
    "org/adapter" is not an error here). A manifest that exists but cannot be
    read is an InputError: silently dropping provenance would hide a problem.
    """
    folder = Path(adapter_dir)
    try:
        if not folder.is_dir():
            return None
    except OSError:
        return None
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise InputError(f"manifest too large (limit {MAX_MANIFEST_BYTES} bytes)", path=str(path))
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"manifest is not valid JSON: {exc}", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read manifest: {exc.strerror}", path=str(path)) from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise InputError(f"not a Brie Bench training manifest (format is not {MANIFEST_FORMAT!r})",
                         path=str(path))
    return data
