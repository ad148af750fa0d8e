"""Tiny random local models that stand in for real checkpoints in tests, demos and benchmarks.

No weights can be downloaded where Brie Bench is tested, yet the `hf` backend,
the judges and the trainer must run real transformers/PEFT code. So this module
*builds* small models from fixed seeds, saves them with `save_pretrained`, and
hands back a folder that loads like any checkpoint (offline, about 0.1 s).

A test aid, so it lives in `brie_bench.testing` (with its corpus in
`data/tiny_corpus.json`), and a public module: the `hf` plugin resolves
`tiny:` ids through it. What it offers:

* ``TINY_IDS`` -- the ids a suite may use as a model or adapter:
  ``tiny:qwen2`` (random Qwen2 causal LM), ``tiny:qwen2-judge`` (same shape,
  other seed) and ``tiny:qwen2-lora`` (a random, non-zero LoRA adapter on
  ``tiny:qwen2``, so it really changes the output).
* ``is_tiny(model_id)`` and ``resolve(model_id, cache_dir=None) -> Path``.
* ``build_random_qwen2(path, ...)`` for bigger random models (benchmarks, training tests).
* ``build_tokenizer()`` / ``save_tokenizer(tokenizer, path)``: the tiny BPE tokenizer.

Builds are deterministic (same seed, same bytes) and atomic (built in a
temporary folder and renamed into ``<cache>/tiny/<name>-v1/``), so parallel
test workers can race for the same model safely.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brie_bench.errors import InputError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from tokenizers import Tokenizer

__all__ = [
    "TINY_PREFIX", "TINY_VERSION", "TINY_IDS", "SPECIAL_TOKENS", "CHAT_TEMPLATE", "CORPUS",
    "is_tiny", "resolve", "cache_root", "build_tokenizer", "save_tokenizer", "build_random_qwen2",
    "build_random_lora",
]

TINY_PREFIX = "tiny:"
#: Bump when anything about a build changes, so stale caches (and unit keys) are not reused.
TINY_VERSION = "v1"

#: Qwen2's pre-tokenisation regex. transformers 5 re-applies it (with NFC) whenever a
#: tokenizer with model_type=qwen2 is loaded, so we train with exactly the same one:
#: otherwise token ids would change between training and reload.
QWEN2_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS: tuple[str, ...] = (ENDOFTEXT, IM_START, IM_END)
TOKENIZER_VOCAB_SIZE = 1536

#: ChatML, as used by Qwen2: system/user/assistant turns, optional generation prompt.
#: Written here (not copied from a hub model) so it is short and easy to read.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- endif -%}"
)

# ---------------------------------------------------------------------------------------
# Training corpus for the tiny tokenizer: contemplative / philosophical English plus the
# words judges answer with, so "Winner: A" and "tie" become short token sequences.
# ---------------------------------------------------------------------------------------
#: The corpus's data file: sentences, a word list and line templates (package data).
CORPUS_FILE = "data/tiny_corpus.json"


def _corpus_lines() -> list[str]:
    """The fixed training corpus: hand-written sentences plus template lines over a word list."""
    data = json.loads(resources.files("brie_bench.testing").joinpath(CORPUS_FILE).read_text(encoding="utf-8"))
    lines: list[str] = list(data["sentences"])
    words: list[str] = data["words"]
    templates: list[str] = data["templates"]
    for i, word in enumerate(words):
        other = words[(i * 7 + 3) % len(words)]
        template = templates[i % len(templates)]
        lines.append(template.format(a=word, b=other))
        lines.append(f"{word.capitalize()}: {word}s, {word}ful thinking, un{word}, {word}ly.")
    return lines


#: The corpus as one list of lines (a few hundred), fixed so the tokenizer is reproducible.
CORPUS: tuple[str, ...] = tuple(_corpus_lines())


# ---------------------------------------------------------------------------------------
# What each tiny id is
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TinySpec:
    kind: str  # "model" or "lora"
    seed: int
    base: str | None = None


_TINY_SHAPE: dict[str, int] = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 128}
_SPECS: dict[str, _TinySpec] = {
    "qwen2": _TinySpec("model", seed=1234),
    "qwen2-judge": _TinySpec("model", seed=4321),
    "qwen2-lora": _TinySpec("lora", seed=777, base="qwen2"),
}
TINY_IDS: tuple[str, ...] = tuple(TINY_PREFIX + name for name in _SPECS)


def is_tiny(model_id: str) -> bool:
    """Whether `model_id` names a built-in tiny model or adapter (``tiny:...``)."""
    return isinstance(model_id, str) and model_id.startswith(TINY_PREFIX)


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The Brie Bench cache folder: the argument, else $BRIE_BENCH_CACHE, else $XDG_CACHE_HOME/brie-bench,
    else ~/.cache/brie-bench (the XDG base-directory default)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from brie_bench import envvars

    env = envvars.cache_dir()
    if env is not None:
        return env
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the spec: a relative value is invalid and is ignored
        return Path(xdg) / "brie-bench"
    return Path.home() / ".cache" / "brie-bench"


def resolve(model_id: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The local folder of tiny model `model_id`, building it on first use.

    Raises `InputError` for an unknown tiny id (it comes from a suite). Never
    touches the network.
    """
    if not is_tiny(model_id):
        raise InputError(f"not a tiny model id: {model_id!r} (tiny ids: {', '.join(TINY_IDS)})",
                         field="model")
    name = model_id[len(TINY_PREFIX):]
    spec = _SPECS.get(name)
    if spec is None:
        raise InputError(f"unknown tiny model {model_id!r}; known: {', '.join(TINY_IDS)}", field="model")
    root = cache_root(cache_dir) / "tiny"
    final = root / f"{name}-{TINY_VERSION}"
    if final.is_dir():
        return final
    base_path = resolve(TINY_PREFIX + spec.base, cache_dir) if spec.base else None
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{uuid.uuid4().hex[:8]}-", dir=root))
    try:
        if spec.kind == "model":
            build_random_qwen2(tmp, seed=spec.seed, **_TINY_SHAPE)
        else:
            assert base_path is not None
            build_random_lora(tmp, base_path, seed=spec.seed, base_model_name=TINY_PREFIX + str(spec.base))
        try:
            os.rename(tmp, final)  # atomic: readers see nothing or a complete folder
        except OSError:
            if not final.is_dir():  # a concurrent builder won the race otherwise
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------
def build_tokenizer(vocab_size: int = TOKENIZER_VOCAB_SIZE) -> Tokenizer:
    """Train the tiny byte-level BPE tokenizer on `CORPUS`, with Qwen2's normaliser and splitter.

    Uses the same NFC normaliser, split regex and byte-level mapping that
    transformers 5's `Qwen2Tokenizer` rebuilds on load, so ids survive
    save/reload unchanged.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(CORPUS), trainer=trainer)
    return tok


def save_tokenizer(tokenizer: Tokenizer, path: str | os.PathLike[str]) -> None:
    """Save `tokenizer` as a Qwen2 tokenizer folder: ChatML template, eos <|im_end|>, pad <|endoftext|>."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]  # transformers' tokenizer __init__ is unannotated
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=None,
        bos_token=None,
        additional_special_tokens=[IM_START],
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(path))
    # Load back as what a real Qwen2 checkpoint declares, so tests exercise the same code path.
    _patch_json(Path(path) / "tokenizer_config.json", {"tokenizer_class": "Qwen2Tokenizer"})


def _patch_json(file: Path, updates: dict[str, Any]) -> None:
    import json

    data = json.loads(file.read_text(encoding="utf-8"))
    data.update(updates)
    file.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------
def build_random_qwen2(path: str | os.PathLike[str], *, hidden: int = 64, layers: int = 2, heads: int = 4,
                       kv_heads: int = 2, intermediate: int = 128, vocab: int | None = None,
                       seed: int = 0, initializer_range: float = 0.2) -> Path:
    """Write a randomly initialised Qwen2 causal LM (and the tiny tokenizer) to `path`.

    `vocab` defaults to the tokenizer's size (it may not be smaller).
    `initializer_range` is larger than Qwen's 0.02 so random logits are peaked:
    greedy decoding then has clear winners and is not decided by float noise.
    Returns `path`.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    n_tok = tok.get_vocab_size()
    if vocab is None:
        vocab = n_tok
    if vocab < n_tok:
        raise ValueError(f"vocab={vocab} is smaller than the tokenizer's {n_tok} tokens")
    save_tokenizer(tok, path)
    im_end, eot = tok.token_to_id(IM_END), tok.token_to_id(ENDOFTEXT)
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, intermediate_size=intermediate, max_position_embeddings=2048,
        initializer_range=initializer_range, tie_word_embeddings=False, use_cache=True,
        bos_token_id=eot, eos_token_id=im_end, pad_token_id=eot,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]  # transformers' GenerationConfig is unannotated
        bos_token_id=eot, eos_token_id=[im_end, eot], pad_token_id=eot, do_sample=False,
    )
    model.save_pretrained(str(path))
    return path


def build_random_lora(path: str | os.PathLike[str], base_path: str | os.PathLike[str], *, seed: int = 0,
                      r: int = 8, lora_alpha: int = 16, base_model_name: str | None = None) -> Path:
    """Write a PEFT LoRA adapter with random, non-zero weights for the model at `base_path`.

    PEFT normally starts B at zero (a no-op adapter); `init_lora_weights=False`
    draws both A and B at random, so the adapter really changes the output.
    No `target_modules`: PEFT's Qwen2 default (q_proj, v_proj), as in real runs.
    `base_model_name` is written into adapter_config.json instead of the absolute
    base path, so the folder's content does not depend on where the cache lives.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    path = Path(path)
    base = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=torch.float32)
    config = LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                        init_lora_weights=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_peft_model(base, config)
    model.save_pretrained(str(path))
    if base_model_name is not None:
        _patch_json(path / "adapter_config.json", {"base_model_name_or_path": base_model_name})
    # PEFT's generated model card embeds the absolute base path; keep the folder position-independent.
    (path / "README.md").write_text(
        f"# Random LoRA adapter (r={r}, seed={seed})\n\nBuilt by brie_bench.testing.tiny for tests; it is noise, "
        f"not a trained model. Base: {base_model_name or 'see adapter_config.json'}.\n", encoding="utf-8")
    return path
