"""The `hf` backend on tiny random models: real transformers + PEFT code, no network."""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import pytest

from brie_bench.api import (
    BackendContext,
    GenerationRequest,
    InputError,
    Message,
    ModelBackend,
    SamplingParams,
)
from brie_bench.plugins import hf
from brie_bench.plugins.hf import HFBackend, HFOptions

PROMPTS = [
    "What is being?",
    "Describe the silence of a monastery garden in autumn, slowly and with care.",
    "Winner?",
    "Compare the Stoic and the Buddhist views of desire in three sentences.",
]
GREEDY = SamplingParams(temperature=0.0, max_tokens=12)


def _requests(params: SamplingParams, prompts: list[str] = PROMPTS,
              system: str | None = "You are a contemplative writer.") -> list[GenerationRequest]:
    head = (Message("system", system),) if system else ()
    return [GenerationRequest(head + (Message("user", p),), params) for p in prompts]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def make_backend(tiny_cache: Path) -> Iterator[Any]:
    """Build HFBackends; close them all afterwards so no shared base leaks into other tests."""
    made: list[HFBackend] = []

    def _make(model: str = "tiny:qwen2", **options: Any) -> HFBackend:
        options.setdefault("device", "cpu")  # exact-equality tests need fp32 on CPU even where a GPU exists
        backend = HFBackend(model, HFOptions(**options), BackendContext("contender", "c", str(tiny_cache)))
        made.append(backend)
        return backend

    yield _make
    for backend in made:
        run(backend.aclose())
    assert hf.shared_bases() == []


def _plain_model(path: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).eval()


# -- registration, identity, validation --------------------------------------------------
def test_registers_through_the_hook() -> None:
    registered: list[type] = []
    hf.register_backends(registered.append)
    assert registered == [HFBackend]
    assert issubclass(HFBackend, ModelBackend) and HFBackend.name == "hf"
    assert HFBackend.supports_choice_logprobs is True


def test_module_imports_without_torch() -> None:
    """API-only users (remote providers) must be able to list and configure the hf backend."""
    code = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'peft'): sys.modules[name] = None\n"
        "from brie_bench.plugins.hf import HFBackend, HFOptions\n"
        "from brie_bench.api import BackendContext\n"
        "b = HFBackend('org/model', HFOptions(adapter='org/adapter', batch_size=3), BackendContext('judge', 'j'))\n"
        "print(b.identity(), b.batch_size)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "'adapter': 'org/adapter'" in out.stdout and out.stdout.strip().endswith(" 3")


def test_identity_uses_tiny_ids_and_hashes_local_adapters(make_backend: Any, tiny_cache: Path,
                                                          tiny_adapter_path: Path, tmp_path: Path) -> None:
    tiny_one = make_backend(adapter="tiny:qwen2-lora", batch_size=2, device="auto")
    ident = tiny_one.identity()
    assert ident == {"backend": "hf", "model": "tiny:qwen2", "options": {"adapter": "tiny:qwen2-lora"},
                     "tiny_version": "v1"}  # batch_size is speed, not meaning
    assert str(tiny_cache) not in json.dumps(ident)

    local = tmp_path / "my-adapter"
    shutil.copytree(tiny_adapter_path, local)
    first = make_backend(adapter=str(local)).identity()
    assert first["options"] == {"adapter": str(local), "device": "cpu"} and len(first["adapter_sha256"]) == 64
    assert make_backend(adapter=str(local)).identity() == first  # stable
    weights = local / "adapter_model.safetensors"  # "retrain": same folder, new weights
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert make_backend(adapter=str(local)).identity()["adapter_sha256"] != first["adapter_sha256"]


def test_check_ready_reports_bad_input(make_backend: Any, tmp_path: Path) -> None:
    make_backend(adapter="tiny:qwen2-lora").check_ready()
    with pytest.raises(InputError, match="adapter folder .* does not exist"):
        make_backend(adapter=str(tmp_path / "missing")).check_ready()
    with pytest.raises(InputError, match="unknown tiny model 'tiny:nope'"):
        make_backend("tiny:nope").check_ready()
    with pytest.raises(InputError, match="unknown GenerationConfig field.*not_a_knob"):
        make_backend(generation_config={"not_a_knob": 1}).check_ready()
    with pytest.raises(Exception, match="batch_size"):
        HFOptions(batch_size=0)


# -- generation ---------------------------------------------------------------------------
def test_batched_left_padded_greedy_equals_one_at_a_time(make_backend: Any) -> None:
    backend = make_backend(batch_size=4)
    requests = _requests(GREEDY)
    batched = run(backend.generate_batch(requests))
    singles = [run(backend.generate_batch([r]))[0] for r in requests]
    assert [r.text for r in batched] == [r.text for r in singles]
    assert [r.usage for r in batched] == [r.usage for r in singles]
    lengths = {r.usage.input_tokens for r in batched}
    assert len(lengths) == len(PROMPTS)  # prompts really differ in length, so padding was exercised
    shared = backend.load()
    assert shared.tokenizer.padding_side == "left"
    for result in batched:
        assert result.finish_reason == "length" and result.usage.output_tokens == GREEDY.max_tokens
        assert result.text and result.model == "tiny:qwen2"


def test_stop_finish_reason_and_token_counts(make_backend: Any, tiny_base_path: Path) -> None:
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(tiny_base_path).eos_token_id
    backend = make_backend(generation_config={"sequence_bias": [[[eos], 50.0]]})  # make <|im_end|> certain
    (result,) = run(backend.generate_batch(_requests(GREEDY, PROMPTS[:1])))
    assert (result.text, result.finish_reason, result.usage.output_tokens) == ("", "stop", 1)


def test_seeded_sampling_is_repeatable(make_backend: Any) -> None:
    backend = make_backend()
    sampled = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=16, seed=11)
    first = [r.text for r in run(backend.generate_batch(_requests(sampled)))]
    again = [r.text for r in run(backend.generate_batch(_requests(sampled)))]
    other_seed = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=16, seed=12)
    other = [r.text for r in run(backend.generate_batch(_requests(other_seed)))]
    greedy = [r.text for r in run(backend.generate_batch(_requests(GREEDY)))]
    assert first == again
    assert first != other and first[:1] != greedy[:1]


def test_mixed_sampling_params_in_one_batch_are_rejected(make_backend: Any) -> None:
    backend = make_backend()
    mixed = _requests(GREEDY, PROMPTS[:1]) + _requests(SamplingParams(temperature=0.5), PROMPTS[1:2])
    with pytest.raises(ValueError, match="share sampling parameters"):
        run(backend.generate_batch(mixed))


# -- adapters on one shared base -----------------------------------------------------------
def test_baseline_and_adapter_share_one_base(make_backend: Any, tiny_base_path: Path) -> None:
    from peft import PeftModel

    baseline = make_backend()
    before = [r.text for r in run(baseline.generate_batch(_requests(GREEDY)))]
    brie = make_backend(adapter="tiny:qwen2-lora")
    by_path = make_backend(str(tiny_base_path))  # the same base named by folder
    judge = make_backend("tiny:qwen2-judge")
    assert baseline.load() is brie.load() is by_path.load()
    assert judge.load() is not baseline.load()
    assert len(hf.shared_bases()) == 2
    shared = baseline.load()
    assert isinstance(shared.model, PeftModel) and list(shared.adapters) == [brie._adapter_name]

    tuned = [r.text for r in run(brie.generate_batch(_requests(GREEDY)))]
    after = [r.text for r in run(baseline.generate_batch(_requests(GREEDY)))]
    assert tuned != before  # the adapter really changes the answers
    assert after == before  # ...and wrapping the shared base did not change the baseline's

    # A second backend with the same adapter reuses the loaded adapter.
    same = make_backend(adapter="tiny:qwen2-lora")
    assert same.load() is shared and same._adapter_name == brie._adapter_name and len(shared.adapters) == 1


def test_disable_adapter_gives_exactly_the_base_logits(make_backend: Any, tiny_base_path: Path) -> None:
    import torch

    brie = make_backend(adapter="tiny:qwen2-lora")
    shared = brie.load()
    ids = shared.tokenizer(["Winner: A. The unexamined life"], return_tensors="pt")
    with torch.no_grad():
        expected = _plain_model(tiny_base_path)(**ids).logits
        with shared.model.disable_adapter():
            baseline_logits = shared.model(**ids).logits
        tuned_logits = shared.model(**ids).logits
    assert torch.equal(baseline_logits, expected)
    assert not torch.allclose(tuned_logits, expected, atol=1e-3)


# -- choice log-probabilities ---------------------------------------------------------------
def _manual_logprob(model: Any, tok: Any, context: str, choice: str) -> float:
    """Unbatched, unpadded: log P(choice tokens | context) from one forward pass."""
    import torch

    ctx = tok(context, add_special_tokens=False)["input_ids"]
    full = tok(context + choice, add_special_tokens=False)["input_ids"]
    assert full[:len(ctx)] == ctx
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([full])).logits[0].float(), dim=-1)
    return sum(float(logprobs[pos - 1, full[pos]]) for pos in range(len(ctx), len(full)))


@pytest.mark.parametrize("adapter", [None, "tiny:qwen2-lora"])
def test_choice_logprobs_match_a_manual_computation(make_backend: Any, tiny_base_path: Path,
                                                    tiny_adapter_path: Path, adapter: str | None) -> None:
    from peft import PeftModel

    backend = make_backend(adapter=adapter)
    if adapter is None:  # also attach an adapter, so the baseline must really run with it disabled
        make_backend(adapter="tiny:qwen2-lora").load()
    messages = [Message("system", "Judge fairly."), Message("user", "Which response is better, A or B?")]
    choices = ["A", "B", "tie", "Response B", ""]
    got = run(backend.choice_logprobs(messages, choices, assistant_prefix="Winner:"))
    assert list(got) == choices and got[""] is None

    model = _plain_model(tiny_base_path)
    if adapter:
        model = PeftModel.from_pretrained(model, tiny_adapter_path).eval()
    tok = backend.load().tokenizer
    context = tok.apply_chat_template([m.to_dict() for m in messages], tokenize=False,
                                      add_generation_prompt=True) + "Winner:"
    for choice in choices[:-1]:
        assert got[choice] == pytest.approx(_manual_logprob(model, tok, context, choice), abs=1e-4), choice
        assert got[choice] < 0

    # A trailing space in the prefix is scored as part of the choice (" A"), as BPE writes it.
    spaced = run(backend.choice_logprobs(messages, ["A", "B"], assistant_prefix="Winner: "))
    for choice in ("A", "B"):
        assert spaced[choice] == pytest.approx(_manual_logprob(model, tok, context, " " + choice), abs=1e-4)


# -- lifetime -----------------------------------------------------------------------------
def test_aclose_releases_the_shared_base(tiny_cache: Path) -> None:
    ctx = BackendContext("contender", "c", str(tiny_cache))
    baseline = HFBackend("tiny:qwen2", HFOptions(), ctx)
    brie = HFBackend("tiny:qwen2", HFOptions(adapter="tiny:qwen2-lora"), ctx)
    run(brie.generate_batch(_requests(GREEDY, PROMPTS[:1])))
    ref = weakref.ref(baseline.load().model)
    run(baseline.aclose())
    assert hf.shared_bases() and ref() is not None  # brie still uses it
    run(brie.aclose())
    run(brie.aclose())  # idempotent
    gc.collect()
    assert hf.shared_bases() == [] and ref() is None


def test_auto_device_and_dtype(make_backend: Any) -> None:
    import torch

    shared = make_backend(device="auto").load()
    param = next(shared.model.parameters())
    if torch.cuda.is_available():
        assert shared.device == "cuda" and param.device.type == "cuda"
        assert param.dtype in (torch.bfloat16, torch.float16)
        (result,) = run(make_backend(device="auto").generate_batch(_requests(GREEDY, PROMPTS[:1])))
        assert 1 <= result.usage.output_tokens <= GREEDY.max_tokens
    else:  # half precision is slow on CPU, so auto means float32 there
        assert (shared.device, param.device.type, param.dtype) == ("cpu", "cpu", torch.float32)
