"""The `hf` backend: a local transformers causal LM, optionally with a PEFT (LoRA) adapter.

The typical suite compares a base model with the same base plus an adapter.
Loading the base twice would double memory for nothing, so every backend in
the process that names the same base (model, revision, dtype, device) shares
ONE loaded model: the first adapter turns it into a `PeftModel`, further
adapters are added with `load_adapter` under their own names, an adapter
contender selects its adapter with `set_adapter`, and the baseline runs inside
`with model.disable_adapter():`, which gives exactly the base model's logits.
A lock per shared base serialises calls, because the active adapter is state
on the shared model.

torch, transformers and peft are imported lazily, inside functions, so this
module (and `brie-bench plugins`) works where they are not installed. Their
first import happens once, in `_import_heavy`, under one process-wide lock:
transformers' lazy module is not safe to import from two threads at once (two
contenders loading in two worker threads raised "cannot import name
'GenerationConfig'"). `brie-bench run` calls `prepare` in the main thread
before any worker starts; `load` takes the same lock, so even code that skips
`prepare` cannot race.

Batches: by default (`batch_size: auto`) the engine asks `plan_batch_size` how many
requests of a plan group go into one `model.generate` call: the largest batch whose
estimated memory fits a share of the device's total memory, up to the whole group.
One padded call over many prompts is what makes a local model fast (on the tiny model,
64 prompts a batch run several times faster than 8; docs/performance.md). A batch that runs out of
memory anyway is halved until it fits. transformers' continuous batching
(`generate_batch`, paged attention) was measured against this padded path on the
real SmolLM2-135M with sampled answers of natural length and was slower on CPU
(docs/performance.md), so the padded path is the one used.

Model ids may be hub ids, local folders, Brie Bench's tiny random models
(``tiny:qwen2``...), resolved through the public `brie_bench.testing.tiny` module, or
real small models converted once from an installed package
(``smollm2:135m-instruct``), resolved through `brie_bench.real_models`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import gc
import hashlib
import os
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from collections.abc import Iterator, Sequence

from pydantic import Field

from brie_bench import real_models
from brie_bench.api import (
    ModelSource,
    ChoiceLogprobs,
    BackendContext,
    BackendOptions,
    GenerationRequest,
    GenerationResult,
    InputError,
    Limits,
    Message,
    ModelBackend,
    PermanentError,
    TransientError,
    Usage,
    hookimpl,
)
from brie_bench.testing import tiny as tiny_models

TINY_PREFIX = tiny_models.TINY_PREFIX
_ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
#: The largest batch, fixed or automatic.
MAX_BATCH = 4096


class HFOptions(BackendOptions):
    """Options of the `hf` backend."""

    adapter: str | None = Field(default=None, description="PEFT adapter: local folder, hub id or tiny id")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="weights dtype; auto = bfloat16/float16 on GPU, float32 on CPU")
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:1, mps ...")
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH)] | Literal["auto"] = Field(
        default="auto",
        description="prompts per model.generate call; auto = as many as fit memory, up to every request "
                    "that shares sampling parameters")
    trust_remote_code: bool = Field(default=False, description="allow model code from the hub")
    revision: str | None = Field(default=None, description="hub revision (branch, tag or commit)")
    generation_config: dict[str, Any] = Field(
        default_factory=dict,
        description="extra transformers GenerationConfig fields (top_k, repetition_penalty, min_new_tokens...)")


# ---------------------------------------------------------------------------------------
# The process-wide cache of loaded base models
# ---------------------------------------------------------------------------------------
@dataclass(eq=False)
class SharedBase:
    """One loaded base model (plain or wrapped in a PeftModel) and everyone who uses it."""

    key: tuple[Any, ...]
    model: Any
    tokenizer: Any
    generation_config: Any
    device: str
    #: Serialises calls: the active adapter is state on the shared model.
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0
    #: adapter name -> where it was loaded from
    adapters: dict[str, str] = field(default_factory=dict)


_BASES: dict[tuple[Any, ...], SharedBase] = {}
_BASES_LOCK = threading.Lock()
#: Held for every first import of torch/transformers/peft and for every model load or tiny build:
#: transformers' lazy module raises ImportError when two threads resolve a name at the same moment.
_IMPORT_LOCK = threading.RLock()
_imported = False
#: Sampling draws from torch's process-global RNG; seeding it and sampling must not
#: interleave with another model's sampling in another thread, or seeds stop meaning anything.
_SAMPLING_LOCK = threading.Lock()


def _import_heavy() -> None:
    """Import every torch/transformers/peft name this module and `brie_bench.testing.tiny` use, once, under the lock.

    Also silences transformers' progress bars and info logs ("Loading weights",
    "Writing model shards"), which would tear through the run's own display,
    and PEFT's deprecation FutureWarning that a user can do nothing about.
    """
    global _imported
    with _IMPORT_LOCK:
        if _imported:
            return
        import torch  # noqa: F401
        import transformers
        from transformers.utils import logging as hf_logging

        for name in ("AutoModelForCausalLM", "AutoTokenizer", "GenerationConfig", "PreTrainedTokenizerFast",
                     "Qwen2Config", "Qwen2ForCausalLM"):
            getattr(transformers, name)  # resolves the lazy attribute now, in this thread
        import peft  # noqa: F401
        from peft import LoraConfig, PeftModel, get_peft_model  # noqa: F401

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers' logging helpers are unannotated
        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # transformers' logging helpers are unannotated
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        _imported = True


def shared_bases() -> list[SharedBase]:
    """The base models loaded right now (for tests, benchmarks and diagnostics)."""
    with _BASES_LOCK:
        return list(_BASES.values())


def _resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _resolve_dtype(dtype: str, device: str) -> Any:
    """float32 on CPU (half precision is slow there); bfloat16 on GPUs that have it, else float16."""
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _hash_adapter_weights(folder: Path) -> str | None:
    """sha256 over the adapter's weight file(s), so a retrained adapter gets new unit keys."""
    digest = hashlib.sha256()
    found = False
    for name in _ADAPTER_WEIGHT_FILES:
        file = folder / name
        if file.is_file():
            found = True
            digest.update(name.encode())
            with file.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest() if found else None


def _looks_like_path(value: str) -> bool:
    """A path the user meant as local (not a hub id such as "org/name")."""
    return value.startswith((".", "/", "~")) or value.count("/") > 1 or os.sep != "/" and os.sep in value


# ---------------------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------------------
#: Written next to an adapter by `brie-bench train`; its provenance is stored with each run.
MANIFEST_FILE = "brie_manifest.json"


class HFBackend(ModelBackend):
    """A local transformers model (plus optional PEFT adapter) that generates in batches."""

    name = "hf"
    description = "local transformers model, optional PEFT adapter; shares one base between contenders"
    Options = HFOptions
    default_limits = Limits(max_concurrency=1, timeout_s=3600.0, max_attempts=2)
    supports_choice_logprobs = True
    local = True

    options: HFOptions

    def __init__(self, model: str, options: BackendOptions, context: BackendContext) -> None:
        super().__init__(model, options, context)
        fixed = self.options.batch_size
        #: The engine's upper bound; with `auto`, `plan_batch_size` picks the real size per plan group.
        self.batch_size: int = MAX_BATCH if fixed == "auto" else fixed
        #: The largest batch that fitted after an out-of-memory back-off (None: never backed off).
        self.fits: int | None = None
        self._shared: SharedBase | None = None
        self._adapter_name: str | None = None
        self._adapter_hash: str | None = None
        self._adapter_hash_done = False
        self._load_lock = threading.Lock()

    # -- where things are -----------------------------------------------------------------
    def _resolve(self, ref: str, what: str) -> str:
        """A tiny id, local folder or hub id -> what from_pretrained should get."""
        if ref.startswith(TINY_PREFIX):
            return str(tiny_models.resolve(ref, self.context.cache_dir))
        if real_models.is_real(ref):  # smollm2:135m-instruct: converted once from its package's GGUF
            return str(real_models.resolve(ref, self.context.cache_dir))
        local = Path(self.context.resolve_path(ref)).expanduser()
        if local.is_dir():
            return str(local.resolve())
        if _looks_like_path(ref):
            raise InputError(f"{what} folder {ref!r} does not exist", field=what)
        return ref

    def _adapter_digest(self) -> str | None:
        if not self._adapter_hash_done:
            adapter = self.options.adapter
            if adapter and not adapter.startswith(TINY_PREFIX):
                folder = Path(self.context.resolve_path(adapter)).expanduser()
                if folder.is_dir():
                    self._adapter_hash = _hash_adapter_weights(folder)
            self._adapter_hash_done = True
        return self._adapter_hash

    def provenance(self) -> dict[str, Any] | None:
        """The adapter's training manifest (written by `brie-bench train`), when there is one."""
        adapter = self.options.adapter
        if not adapter or adapter.startswith(TINY_PREFIX):
            return None
        manifest = Path(self.context.resolve_path(adapter)).expanduser() / MANIFEST_FILE
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None  # a manifest is a JSON object; anything else is not one

    def identity(self) -> dict[str, Any]:
        """Model and adapter as given, plus the adapter's weight hash; never tiny cache paths.

        `batch_size` is left out: it changes speed, not what the answers mean.
        """
        opts = self.options.model_dump(exclude={"api_key_env", "batch_size"}, exclude_defaults=True)
        ident: dict[str, Any] = {"backend": self.name, "model": self.model, "options": opts}
        if self.model.startswith(TINY_PREFIX) or (self.options.adapter or "").startswith(TINY_PREFIX):
            ident["tiny_version"] = tiny_models.TINY_VERSION
        if real_models.is_real(self.model):
            ident["weights"] = real_models.weights_id(self.model)
        digest = self._adapter_digest()
        if digest:
            ident["adapter_sha256"] = digest
        return ident

    def check_ready(self) -> None:
        """Fail early on a missing local model/adapter folder or unknown generation options."""
        super().check_ready()
        for ref, what in ((self.model, "model"), (self.options.adapter, "adapter")):
            if ref and real_models.is_real(ref):
                real_models.check_available(ref, self.context.cache_dir)  # install command when missing
            elif ref and not ref.startswith(TINY_PREFIX):
                if not Path(self.context.resolve_path(ref)).expanduser().is_dir() and _looks_like_path(ref):
                    raise InputError(f"{what} folder {ref!r} does not exist", field=what)
            elif ref:
                if ref not in tiny_models.TINY_IDS:
                    raise InputError(f"unknown tiny model {ref!r}; known: {', '.join(tiny_models.TINY_IDS)}",
                                     field=what)
        if self.options.generation_config:
            _import_heavy()
            from transformers import GenerationConfig

            fields = copy.deepcopy(self.options.generation_config)
            unused = GenerationConfig().update(**fields)  # type: ignore[no-untyped-call]  # unannotated in transformers
            if unused:
                raise InputError(f"unknown GenerationConfig field(s): {', '.join(sorted(unused))}",
                                 field="options.generation_config")

    def model_sources(self) -> list[ModelSource]:
        """Where the model and adapter come from (`ModelSource`), checked by `run` before any generation.

        Built-in ids are built here, local folders are read as they are, anything else is a
        hub id that must be in the Hugging Face cache or downloadable.
        """
        out: list[ModelSource] = []
        for ref, what in ((self.model, "model"), (self.options.adapter, "adapter")):
            if not ref:
                continue
            if ref.startswith(TINY_PREFIX) or real_models.is_real(ref):
                out.append(ModelSource(what, ref, "built-in"))
            elif Path(self.context.resolve_path(ref)).expanduser().is_dir():
                out.append(ModelSource(what, ref, "local"))
            else:
                out.append(ModelSource(what, ref, "hub", self.options.revision if what == "model" else None))
        return out

    # -- loading --------------------------------------------------------------------------
    def prepare(self) -> None:
        """Import torch/transformers/peft and build this backend's tiny models, in the calling thread.

        Called by `brie-bench run` in the main thread before the workers start;
        hub models and local folders are still loaded lazily, on the first call.
        """
        with _IMPORT_LOCK:
            _import_heavy()
            for ref in (self.model, self.options.adapter):
                if ref and ref.startswith(TINY_PREFIX):
                    tiny_models.resolve(ref, self.context.cache_dir)
                elif ref and real_models.is_real(ref):
                    real_models.resolve(ref, self.context.cache_dir)

    def load(self) -> SharedBase:
        """Load (or join) the shared base model and attach this backend's adapter. Blocking.

        Safe to call from several threads; the engine calls it in a worker thread.
        Loads are serialised by the process-wide import lock (see the module docstring).
        """
        with self._load_lock:
            if self._shared is not None:
                return self._shared
            with _IMPORT_LOCK:
                _import_heavy()
                return self._load_locked()

    def _load_locked(self) -> SharedBase:
        """`load`'s body; the caller holds `self._load_lock` and `_IMPORT_LOCK`."""
        model_path = self._resolve(self.model, "model")
        adapter_path = self._resolve(self.options.adapter, "adapter") if self.options.adapter else None
        device = _resolve_device(self.options.device)
        dtype = _resolve_dtype(self.options.dtype, device)
        key = (model_path, self.options.revision, str(dtype), device, self.options.trust_remote_code)
        with _BASES_LOCK:
            shared = _BASES.get(key)
            if shared is None:
                shared = self._load_base(key, model_path, dtype, device)
                _BASES[key] = shared
            shared.users += 1
        try:
            if adapter_path is not None:
                self._adapter_name = self._attach_adapter(shared, adapter_path)
        except BaseException:
            self._release(shared)
            raise
        self._shared = shared
        return shared

    def _load_base(self, key: tuple[Any, ...], model_path: str, dtype: Any, device: str) -> SharedBase:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = {"revision": self.options.revision,
                                  "trust_remote_code": self.options.trust_remote_code}
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_path, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, device_map=device, **kwargs)
        except (OSError, ValueError) as exc:
            raise PermanentError(f"hf: cannot load model {self.model!r}: {exc}", kind="load") from exc
        model.eval()  # type: ignore[no-untyped-call]  # torch's Module.eval() is reached through an untyped from_pretrained result
        tokenizer.padding_side = "left"  # generation continues every row from its last real token
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if not getattr(tokenizer, "chat_template", None):
            raise PermanentError(f"hf: model {self.model!r} has no chat template; use an instruct/chat model "
                                 "or add chat_template.jinja to its folder", kind="config")
        return SharedBase(key=key, model=model, tokenizer=tokenizer,
                          generation_config=copy.deepcopy(model.generation_config), device=device)

    def _attach_adapter(self, shared: SharedBase, adapter_path: str) -> str:
        """Load the adapter onto the shared model under a content-derived name; returns the name."""
        from peft import PeftModel

        digest = self._adapter_digest() or hashlib.sha256(adapter_path.encode()).hexdigest()
        name = "brie_" + hashlib.sha256(f"{adapter_path}\0{digest}".encode()).hexdigest()[:12]
        with shared.lock:
            if name in shared.adapters:
                return name
            try:
                if isinstance(shared.model, PeftModel):
                    shared.model.load_adapter(adapter_path, adapter_name=name)
                else:
                    shared.model = PeftModel.from_pretrained(shared.model, adapter_path, adapter_name=name)
            except (OSError, ValueError, KeyError) as exc:
                raise PermanentError(f"hf: cannot load adapter {self.options.adapter!r}: {exc}",
                                     kind="load") from exc
            shared.model.to(shared.device)
            shared.model.eval()
            shared.adapters[name] = adapter_path
        return name

    @contextmanager
    def _active_model(self, shared: SharedBase) -> Iterator[Any]:
        """The shared model with this backend's adapter on, or all adapters off. Hold shared.lock."""
        from peft import PeftModel

        model = shared.model
        if self._adapter_name is not None:
            model.set_adapter(self._adapter_name)
            yield model
        elif isinstance(model, PeftModel):
            with model.disable_adapter():
                yield model
        else:
            yield model

    # -- batch size -----------------------------------------------------------------------
    def plan_batch_size(self, requests: Sequence[GenerationRequest]) -> int:
        """How many of `requests` -- one plan group, sharing sampling parameters -- go into one batch.

        The engine cuts the whole plan's batches with this before it generates (see
        docs/architecture.md, "Engine"). A fixed `batch_size` is returned as is. `auto`
        loads the model and takes the largest batch whose estimated memory
        (`_row_bytes`: KV cache, prefill activations, sampling buffers) fits the
        budget (`_memory_budget`), up to every request of the group. The estimate is
        a pure function of the requests, the model's shape and the device's *total*
        memory, never of what happens to be free, so a resumed run on the same
        machine cuts exactly the batches an uninterrupted one did. Blocking (loads
        the model): the engine calls it in a worker thread.
        """
        if not requests:
            return 1
        if self.options.batch_size != "auto":
            return self.batch_size
        shared = self.load()
        tok = shared.tokenizer
        prompt_tokens = max(len(tok(self._prompt_text(shared, r.messages), add_special_tokens=False)["input_ids"])
                            for r in requests)
        new_tokens = max(r.params.max_tokens for r in requests)
        model = shared.model
        elem = next(model.parameters()).element_size()
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        per_row = _row_bytes(model.config, elem, prompt_tokens, new_tokens)
        fitting = _memory_budget(shared.device, weights) // per_row
        return int(max(1, min(len(requests), MAX_BATCH, fitting)))

    # -- generation -----------------------------------------------------------------------
    async def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Generate for up to `batch_size` requests that share sampling parameters, in one call."""
        if not requests:
            return []
        return await asyncio.to_thread(self._generate_sync, list(requests))

    def _prompt_text(self, shared: SharedBase, messages: Sequence[Message]) -> str:
        text: str = shared.tokenizer.apply_chat_template(  # tokenize=False: the template's text
            [m.to_dict() for m in messages], tokenize=False, add_generation_prompt=True)
        return text

    def _generation_config(self, shared: SharedBase, params: Any) -> Any:
        gen = copy.deepcopy(shared.generation_config)
        unused = gen.update(**copy.deepcopy(self.options.generation_config))
        if unused:  # check_ready reports this as an InputError before any call
            raise PermanentError(f"hf: unknown GenerationConfig field(s): {', '.join(sorted(unused))}",
                                 kind="config")
        if params.temperature > 0:
            gen.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:  # greedy: clear sampling knobs so transformers does not warn about unused ones
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        gen.max_new_tokens = params.max_tokens
        tok = shared.tokenizer
        eos = gen.eos_token_id if gen.eos_token_id is not None else []
        eos_ids = {eos} if isinstance(eos, int) else set(eos)
        if tok.eos_token_id is not None:
            eos_ids.add(tok.eos_token_id)
        gen.eos_token_id = sorted(eos_ids)
        gen.pad_token_id = tok.pad_token_id
        return gen

    def _generate_sync(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        params = requests[0].params
        if any(r.params != params for r in requests):
            raise ValueError("hf.generate_batch: requests in one batch must share sampling parameters")
        shared = self.load()
        tok = shared.tokenizer
        prompts = [self._prompt_text(shared, r.messages) for r in requests]
        gen = self._generation_config(shared, params)
        with shared.lock:
            rows = self._generate_backing_off(shared, prompts, gen, params.seed)
        eos_ids = set(gen.eos_token_id)
        results = []
        for row, n_prompt in rows:
            stop_at = next((i for i, t in enumerate(row) if t in eos_ids), None)
            if stop_at is None:
                kept, n_out, finish = row, len(row), "length"
            else:
                kept, n_out, finish = row[:stop_at], stop_at + 1, "stop"
            results.append(GenerationResult(
                text=tok.decode(kept, skip_special_tokens=True),
                usage=Usage(input_tokens=int(n_prompt), output_tokens=n_out),
                finish_reason=finish,
                model=self.model,
            ))
        return results

    def _generate_backing_off(self, shared: SharedBase, prompts: list[str], gen: Any,
                              seed: int) -> list[tuple[list[int], int]]:
        """`_generate_once` over `prompts`, halving the batch on out-of-memory until it fits.

        The largest size that fitted is remembered (`self.fits`), so later batches are
        cut to it before they run out of memory again. A split batch samples what its
        parts sample, not what the whole batch would have: a run that backed off
        can differ from one that did not (see docs/architecture.md, "Engine").
        """
        if self.fits is not None and len(prompts) > self.fits:
            step = self.fits
            return [row for i in range(0, len(prompts), step)
                    for row in self._generate_backing_off(shared, prompts[i:i + step], gen, seed)]
        try:
            return self._generate_once(shared, prompts, gen, seed)
        except Exception as exc:  # only out-of-memory is handled; the rest is re-raised
            if not _is_out_of_memory(exc):
                raise
            if len(prompts) == 1:
                raise TransientError(f"hf: out of memory generating a single prompt on {shared.device}: {exc}",
                                     kind="oom") from exc
        # Outside the except block, so the failed attempt's tensors (held by the traceback) can be freed.
        _free_memory(shared.device)
        half = (len(prompts) + 1) // 2
        self.fits = half if self.fits is None else min(self.fits, half)
        return (self._generate_backing_off(shared, prompts[:half], gen, seed)
                + self._generate_backing_off(shared, prompts[half:], gen, seed))

    def _generate_once(self, shared: SharedBase, prompts: list[str], gen: Any,
                       seed: int) -> list[tuple[list[int], int]]:
        """One left-padded `model.generate` call: (new token ids, prompt token count) per prompt.

        The caller holds `shared.lock`.
        """
        import torch

        tok = shared.tokenizer
        # The chat template already holds every special token the model expects.
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = {k: enc[k].to(shared.device) for k in ("input_ids", "attention_mask")}
        with self._active_model(shared) as model, torch.inference_mode():
            if gen.do_sample:
                with _SAMPLING_LOCK:
                    torch.manual_seed(seed)
                    out = model.generate(**inputs, generation_config=gen)
            else:
                out = model.generate(**inputs, generation_config=gen)
        prompt_len = enc["input_ids"].shape[1]
        return list(zip(out[:, prompt_len:].tolist(), enc["attention_mask"].sum(dim=1).tolist()))

    # -- choice log-probabilities ---------------------------------------------------------
    async def choice_logprobs(self, messages: Sequence[Message], choices: Sequence[str],
                              assistant_prefix: str = "") -> dict[str, float | None]:
        """Summed log-probability of each choice's tokens after the prompt and `assistant_prefix`."""
        return await asyncio.to_thread(self._choice_logprobs_sync, list(messages), list(choices),
                                       assistant_prefix)

    def choice_token_ids(self, shared: SharedBase, context: str, choice: str) -> tuple[list[int], list[int]]:
        """(context ids, choice ids) as scored by `choice_logprobs`.

        Trailing spaces of the context move into the choice ("Winner: " + "A" is
        scored as "Winner:" + " A"), because BPE tokenizers attach a space to the
        word after it; the choice ids are the tail of the joint encoding whenever
        the context's own encoding is a prefix of it.
        """
        tok = shared.tokenizer
        stripped = context.rstrip(" \t")
        moved = context[len(stripped):]
        ctx_ids = tok(stripped, add_special_tokens=False)["input_ids"]
        full_ids = tok(stripped + moved + choice, add_special_tokens=False)["input_ids"]
        if full_ids[:len(ctx_ids)] == ctx_ids:
            return ctx_ids, full_ids[len(ctx_ids):]
        return ctx_ids, tok(moved + choice, add_special_tokens=False)["input_ids"]

    def _choice_logprobs_sync(self, messages: list[Message], choices: list[str],
                              assistant_prefix: str) -> dict[str, float | None]:
        import torch

        shared = self.load()
        context = self._prompt_text(shared, messages) + assistant_prefix
        rows: list[tuple[str, list[int], list[int]]] = []
        result: dict[str, float | None] = {}
        for choice in choices:
            ctx_ids, cont_ids = self.choice_token_ids(shared, context, choice)
            if not choice or not cont_ids or not ctx_ids:
                result[choice] = None
            else:
                rows.append((choice, ctx_ids, cont_ids))
        if not rows:
            return result
        if all(len(k) == 1 and c == rows[0][1] for _, c, k in rows):
            # One-token choices after one shared context ("Winner: " + A/B): one row and only the last
            # position's logits give the same numbers at a fraction of the cost (about 2.5x on a CPU).
            return ChoiceLogprobs(self._next_token_logprobs(shared, rows, choices, result),
                                  usage=Usage(input_tokens=len(rows[0][1])))
        width = max(len(c) + len(k) for _, c, k in rows)
        pad = shared.tokenizer.pad_token_id or 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (_, ctx_ids, cont_ids) in enumerate(rows):  # right padding: positions stay 0..n-1
            seq = ctx_ids + cont_ids
            ids[i, :len(seq)] = torch.tensor(seq)
            mask[i, :len(seq)] = 1
        with shared.lock:
            with self._active_model(shared) as model, torch.inference_mode():
                logits = model(input_ids=ids.to(shared.device), attention_mask=mask.to(shared.device)).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        for i, (choice, ctx_ids, cont_ids) in enumerate(rows):
            start = len(ctx_ids)
            total = 0.0
            for j, token in enumerate(cont_ids):
                total += float(logprobs[i, start + j - 1, token])  # logits at t predict token t+1
            result[choice] = total
        # Usage: the prompt's tokens, as a generating judge would report them (each choice adds a few).
        return ChoiceLogprobs({c: result[c] for c in choices}, usage=Usage(input_tokens=len(rows[0][1])))

    def _next_token_logprobs(self, shared: SharedBase, rows: list[tuple[str, list[int], list[int]]],
                             choices: list[str], result: dict[str, float | None]) -> dict[str, float | None]:
        """`_choice_logprobs_sync` when every choice is one token after the same context."""
        import torch

        ids = torch.tensor([rows[0][1]], dtype=torch.long, device=shared.device)
        with shared.lock:
            with self._active_model(shared) as model, torch.inference_mode():
                logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=1).logits
        logprobs = torch.log_softmax(logits[0, -1].float(), dim=-1).cpu()
        for choice, _, cont_ids in rows:
            result[choice] = float(logprobs[cont_ids[0]])
        return {c: result[c] for c in choices}

    # -- lifetime -------------------------------------------------------------------------
    def _release(self, shared: SharedBase) -> None:
        with _BASES_LOCK:
            shared.users -= 1
            if shared.users <= 0:
                _BASES.pop(shared.key, None)
                shared.model = None
                shared.tokenizer = None

    async def aclose(self) -> None:
        """Leave the shared base; the last user drops it so its memory can be freed."""
        shared, self._shared = self._shared, None
        if shared is None:
            return
        self._release(shared)
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is present whenever a model was loaded
            pass


# ---------------------------------------------------------------------------------------
# Memory: what one more row of a batch costs, what the device has, running out of it
# ---------------------------------------------------------------------------------------
#: Share of the device's total memory `batch_size: auto` plans to fill. On CPU it is low: the
#: machine's RAM is shared with everything else, and Linux kills a process that overruns it
#: instead of raising an error that could be backed off from.
_MEMORY_SHARE = {"cuda": 0.85, "mps": 0.7, "cpu": 0.25}
#: Headroom on the per-row estimate (allocator fragmentation, temporaries it does not count).
_ROW_SLACK = 1.5


def _row_bytes(config: Any, elem: int, prompt_tokens: int, new_tokens: int) -> int:
    """Estimated bytes one more row of a left-padded `generate` batch needs at its peak.

    The KV cache for the whole sequence, the prefill's activations (MLP and
    attention scores, in float32 at worst) and the float32 logits that sampling
    copies a few times (generate keeps only the last position's logits).
    """
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(text.hidden_size)
    heads = int(text.num_attention_heads)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
    inter = int(getattr(text, "intermediate_size", None) or 4 * hidden)
    layers = int(text.num_hidden_layers)
    vocab = int(text.vocab_size)
    seq = prompt_tokens + new_tokens
    kv_cache = 2 * layers * kv_heads * head_dim * elem * seq
    prefill = prompt_tokens * (4 * hidden + 3 * inter) * 4 + heads * prompt_tokens * prompt_tokens * 4
    logits = 8 * vocab * 4
    return max(1, int(_ROW_SLACK * (kv_cache + prefill + logits)))


def _total_memory(device: str) -> int:
    """The device's total memory in bytes: GPU memory, or the RAM this process may use on CPU."""
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    if device.startswith("mps"):
        return int(torch.mps.recommended_max_memory())
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit():
            total = min(total, int(limit))
    return int(total)


def _memory_budget(device: str, weights_bytes: int) -> int:
    """Bytes `batch_size: auto` may fill with batch rows: a share of the total, less the weights."""
    share = _MEMORY_SHARE.get(device.split(":")[0], _MEMORY_SHARE["cpu"])
    return max(0, int(_total_memory(device) * share) - weights_bytes)


def _is_out_of_memory(exc: BaseException) -> bool:
    """CUDA raises `torch.OutOfMemoryError`; MPS and the CPU allocator raise a RuntimeError that says so."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


def _free_memory(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    elif device.startswith("mps"):
        torch.mps.empty_cache()


@hookimpl
def register_backends(register: Any) -> None:
    register(HFBackend)
