"""`python -m brie_bench.training.merge ADAPTER OUT`: the adapter merged into a local copy of its base.

Why it exists: `transformers serve` (and `brie_bench.local_server`, which runs it) loads a
model folder: it reads the folder's `config.json` first, and an adapter folder has none
(checked against transformers 5.25: "Unrecognized model ... Should have a `model_type` key").
Merging LoRA into the base weights gives an ordinary model folder that serves like any other,
with no PEFT at serving time, so the fine-tune can be served beside its base:

    python -m brie_bench.training.merge adapters/mini-brie adapters/mini-brie-merged
    python -m brie_bench.local_server adapters/mini-brie-merged --port 8012

The base is found offline: the manifest written by `brie-bench train` keeps Brie Bench's own id
(`smollm2:135m-instruct`, `tiny:qwen2`), which resolves to the local converted copy; without a
manifest the id in `adapter_config.json` is used (a Hub id or a folder). `--base` overrides both.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import click

from brie_bench.errors import InputError

__all__ = ["base_for", "merge"]


def base_for(adapter_dir: Path) -> str:
    """The base model id of `adapter_dir`: the manifest's Brie Bench id, else adapter_config.json's."""
    from brie_bench.training.manifest import read_manifest

    manifest = read_manifest(adapter_dir)
    if manifest is not None and isinstance(manifest.get("base_model"), dict) and manifest["base_model"].get("id"):
        return str(manifest["base_model"]["id"])
    config = adapter_dir / "adapter_config.json"
    if not config.is_file():
        raise InputError("not an adapter folder (no adapter_config.json)", path=str(adapter_dir))
    try:
        named = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        raise InputError("adapter_config.json is not a JSON object", path=str(config)) from None
    if not isinstance(named, str) or not named:
        raise InputError("adapter_config.json names no base_model_name_or_path; pass --base", path=str(config))
    return named


def merge(adapter_dir: str | Path, out: str | Path, *, base: str | None = None) -> Path:
    """Write `adapter_dir` merged into its base as a plain model folder at `out` (atomically: a
    temporary sibling renamed into place); return `out`. Refuses an `out` that exists."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from brie_bench.training.run import resolve_model_path

    adapter, target = Path(adapter_dir).expanduser().resolve(), Path(out).expanduser().resolve()
    if target.exists():
        raise InputError(f"{target} exists; choose a new folder for the merged model", path=str(target))
    model_id = base or base_for(adapter)
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(model_id), dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))  # the tokenizer travels with the adapter
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@click.command("merge")
@click.argument("adapter", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path())
@click.option("--base", default=None, help="Base model id or folder (default: from the adapter's manifest).")
def merge_command(adapter: str, out: str, base: str | None) -> None:
    """Merge ADAPTER into a local copy of its base model, written to OUT (a new folder)."""
    from brie_bench.training.run import _quiet_library_bars, _quiet_library_warnings

    with _quiet_library_bars(), _quiet_library_warnings():
        target = merge(adapter, out, base=base)
    click.echo(f"merged {adapter} into {target}; serve it with: python -m brie_bench.local_server {target}")


def main(argv: list[str] | None = None) -> int:
    from brie_bench.training.cli import run_standalone

    return run_standalone(merge_command, argv, "python -m brie_bench.training.merge")


if __name__ == "__main__":
    sys.exit(main())
