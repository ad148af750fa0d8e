"""Peak memory of baseline + adapter contenders: one shared base vs the base loaded twice.

The usual suite compares a base model with base + LoRA. The `hf` backend keeps
ONE copy of the base (the baseline runs under `disable_adapter()`); the naive
alternative loads the base once per contender. This builds a ~100M-parameter
random Qwen2 (fp32, ~0.4 GB) and a random LoRA adapter, then runs each variant
in a fresh subprocess that loads both contenders, generates a few tokens with
each, and reports its own peak RSS (resource.getrusage ru_maxrss). A third
child only imports the libraries, to show the fixed overhead. Target:
ratio = shared / twice <= 0.6. The last line is machine-readable:

    RESULT adapter_memory_ratio=<r> weights_ratio=<r> ratio_above_imports=<r> shared_mib=<..> ... target=0.6

adapter_memory_ratio is the whole-process peak RSS ratio (imports included);
weights_ratio counts only the distinct weight tensors each variant holds.
`--model smollm2:135m-instruct` measures the real SmolLM2-135M-Instruct base
(converted once by `brie_bench.real_models`) with a random LoRA instead.

Run: python benchmarks/adapter_memory.py [--keep DIR] [--layers 30] [--model smollm2:135m-instruct]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.6
#: ~100M parameters with Qwen-style grouped-query attention (12 query heads, 2 KV heads).
SHAPE = {"hidden": 768, "layers": 12, "heads": 12, "kv_heads": 2, "intermediate": 3072}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _vm_hwm_mib() -> float | None:
    """Peak RSS of this process image alone (/proc VmHWM), as a cross-check on ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _weights_mib(*models: Any) -> float:
    """MiB of the distinct tensors (parameters and buffers) the given models hold: weights only."""
    seen: dict[int, int] = {}
    for model in models:
        for tensor in [*model.parameters(), *model.buffers()]:
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values()) / 2**20


def child(variant: str, model: str, adapter: str) -> None:
    """Run in a fresh process: load one variant, generate, print peak RSS as JSON."""
    import asyncio

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from brie_bench.api import BackendContext, GenerationRequest, Message, SamplingParams
    from brie_bench.plugins.hf import HFBackend, HFOptions

    torch.set_num_threads(2)
    params = SamplingParams(temperature=0.0, max_tokens=4)
    request = GenerationRequest((Message("user", "What is attention?"),), params)
    if variant == "shared":  # what Brie Bench does: two contenders, one base
        ctx = BackendContext("contender", "bench")
        baseline = HFBackend(model, HFOptions(device="cpu"), ctx)
        brie = HFBackend(model, HFOptions(device="cpu", adapter=adapter), ctx)

        async def both() -> None:
            await baseline.generate_batch([request])
            await brie.generate_batch([request])

        asyncio.run(both())
        assert baseline.load() is brie.load()
        weights = _weights_mib(baseline.load().model)
    elif variant == "twice":  # the naive way: each contender loads its own base
        tok = AutoTokenizer.from_pretrained(model)
        ids = tok.apply_chat_template([{"role": "user", "content": "What is attention?"}],
                                      add_generation_prompt=True, return_tensors="pt", return_dict=True)
        base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        tuned = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32), adapter).eval()
        with torch.inference_mode():
            for m in (base, tuned):
                m.generate(**ids, max_new_tokens=4, do_sample=False)
        weights = _weights_mib(base, tuned)
    elif variant == "imports":
        weights = 0.0
    else:
        raise SystemExit(f"unknown variant {variant}")
    print(json.dumps({"variant": variant, "peak_mib": _peak_mib(), "vm_hwm_mib": _vm_hwm_mib(),
                      "weights_mib": weights}))


def run_child(*args: str) -> dict[str, Any]:
    """Run this script in a fresh interpreter; return the JSON object it prints last.

    The parent stays small (stdlib only, models built in a child too): Linux carries
    a process's peak RSS across fork+exec into the child's ru_maxrss.
    """
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env,
                         timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"child {args[:2]} failed:\n{out.stderr[-3000:]}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line)


def build(folder: str, layers: int = SHAPE["layers"], real: str | None = None) -> None:
    """Child: build the base (~100M parameters at 12 layers) and its adapter into `folder` (reused when present).

    With `real` (``smollm2:135m-instruct``) the base is that real model, converted once into
    the Brie Bench cache by `brie_bench.real_models`; only the random LoRA is built here.
    """
    from safetensors import safe_open

    from brie_bench import real_models

    from brie_bench.testing import tiny

    if real:
        model = real_models.resolve(real)
        adapter = Path(folder) / f"lora-{real.replace(':', '-')}"
    else:
        model, adapter = Path(folder) / f"base-{layers}l", Path(folder) / f"lora-{layers}l"
    if not (model / "model.safetensors").exists():
        tiny.build_random_qwen2(model, seed=0, **{**SHAPE, "layers": layers})
    if not (adapter / "adapter_model.safetensors").exists():
        tiny.build_random_lora(adapter, model, seed=1, r=16, lora_alpha=32)
    with safe_open(str(model / "model.safetensors"), "pt") as fh:
        n_params = sum(_prod(fh.get_slice(k).get_shape()) for k in fh.keys())
    print(json.dumps({"model": str(model), "adapter": str(adapter), "params": n_params}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the models here and keep them (reused on rerun)")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "MODEL", "ADAPTER"), help=argparse.SUPPRESS)
    parser.add_argument("--build", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--model", metavar="ID", help="a real model id (smollm2:135m-instruct) instead of the "
                        "random ~100M base; needs its package installed")
    parser.add_argument("--layers", type=int, default=SHAPE["layers"],
                        help="decoder layers (12: ~100M parameters; 30: ~255M, where weights dominate the "
                             "~400 MiB that importing torch+transformers costs)")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.build:
        build(args.build, args.layers, args.model)
        return

    with tempfile.TemporaryDirectory(prefix="brie-bench-adapter-mem-") as tmp:
        folder = args.keep or Path(tmp)
        t0 = time.perf_counter()
        built = run_child("--build", str(folder), "--layers", str(args.layers),
                          *(["--model", args.model] if args.model else []))
        n_params = built["params"]
        print(f"built {n_params / 1e6:.1f}M-parameter base + LoRA r=16 in {time.perf_counter() - t0:.1f} s "
              f"(parent peak RSS {_peak_mib():.0f} MiB)")
        reports = {v: run_child("--child", v, built["model"], built["adapter"])
                   for v in ("imports", "shared", "twice")}
    peaks = {v: float(r["peak_mib"]) for v, r in reports.items()}
    weights = {v: float(r["weights_mib"]) for v, r in reports.items()}

    for variant, report in reports.items():
        print(f"{variant:>7}: peak RSS {report['peak_mib']:,.0f} MiB (VmHWM {report['vm_hwm_mib'] or 0:,.0f} MiB), "
              f"weights held {weights[variant]:,.0f} MiB")
    ratio = peaks["shared"] / peaks["twice"]
    above_imports = (peaks["shared"] - peaks["imports"]) / (peaks["twice"] - peaks["imports"])
    weights_ratio = weights["shared"] / weights["twice"]
    print(f"whole process: ratio shared/twice = {ratio:.3f} (target <= {TARGET:g}); above the import overhead: "
          f"{above_imports:.3f}; weights only (distinct tensors held): {weights_ratio:.3f}")
    model = args.model or "random-qwen2"
    print(f"RESULT adapter_memory_ratio={ratio:.3f} weights_ratio={weights_ratio:.3f} "
          f"ratio_above_imports={above_imports:.3f} shared_mib={peaks['shared']:.0f} "
          f"twice_mib={peaks['twice']:.0f} imports_mib={peaks['imports']:.0f} "
          f"shared_weights_mib={weights['shared']:.0f} twice_weights_mib={weights['twice']:.0f} "
          f"model={model} params_m={n_params / 1e6:.1f} target={TARGET:g}")


def _prod(shape: list[int]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


if __name__ == "__main__":
    main()
