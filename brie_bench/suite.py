"""Suites: the YAML file that says what to compare, how, and who judges.

`load_suite` reads a suite boundedly (see yamlload), validates it into typed
records, resolves prompt files (which must stay inside the suite's folder),
and checks every cross-reference. `check_plugins` then validates backend and
judge names and their options against the registered plugins. Every failure
is an `InputError` naming the file, the field path and, where known, the line.

A suite may come from someone else, so three rules hold here, in one place:

* every path option (`prompts_file`, and each plugin option declared with
  `suite_path_field`, such as the llm judge's `template`) resolves inside the
  suite's folder;
* no secret sits anywhere in the options, however deeply nested
  (`extra_body.headers.Authorization`, a key in a `base_url`'s user info);
* the environment's default key of a provider goes only to that provider's
  own host: a `base_url` elsewhere must name `api_key_env` or set
  `require_key: false` (`destination_lines` shows where every call goes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from collections.abc import Iterator
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from brie_bench.api import Limits, stable_hash
from brie_bench.bounded import confine, is_suite_path
from brie_bench.errors import InputError
from brie_bench.outputs import DEFAULT_MAX_STORED_CHARS
from brie_bench.prices import Price
from brie_bench.records import DEFAULT_CRITERIA
from brie_bench.yamlload import LineIndex, format_loc, load_yaml, validation_error

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
SECRET_KEY_PATTERN = re.compile(
    r"(^|_)(api_?key|token|secret|password|passwd|authorization|auth|bearer|cookie|credentials?|private_?key)$",
    re.IGNORECASE)
#: A URL with user info (`https://user:sk-...@host`): credentials in a string value.
_URL_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/\s@?#]+@")
#: Values that look like a key whatever their field is called: `Bearer ...`, OpenAI/Anthropic/Google keys.
_SECRET_VALUE = re.compile(r"^\s*(?:bearer|basic)\s+\S{8,}|(?:^|\W)(?:sk-[A-Za-z0-9_\-]{8,}|AIza[A-Za-z0-9_\-]{20,})",
                           re.IGNORECASE)
MAX_PROMPTS_PER_SECTION = 10_000


def _no_bool(value: Any) -> Any:
    """YAML reads `yes`/`true` as booleans; pydantic would quietly turn them into 1. Refuse."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, not the boolean {str(value).lower()}")
    return value


Num = Annotated[float, BeforeValidator(_no_bool)]
Int = Annotated[int, BeforeValidator(_no_bool)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Settings(_Strict):
    """Generation and judging settings: `defaults` of a suite, overridable per section."""

    system_prompt: str | None = "You are a helpful AI assistant."
    temperature: Num = Field(default=0.75, ge=0.0, le=2.0)
    top_p: Num = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: Int = Field(default=512, ge=1, le=131_072)
    samples: Int = Field(default=1, ge=1, le=100)
    orders: Literal["random", "both"] = "random"
    criteria: list[str] = Field(default_factory=lambda: list(DEFAULT_CRITERIA), min_length=1, max_length=20)
    seed: Int | None = Field(default=None, ge=0, le=2**63 - 1)

    @field_validator("criteria")
    @classmethod
    def _criteria_unique(cls, value: list[str]) -> list[str]:
        for c in value:
            if not re.match(r"^[A-Za-z][A-Za-z0-9_]{0,39}$", c):
                raise ValueError(f"criterion {c!r} must be a short identifier (letters, digits, _)")
        if len(set(value)) != len(value):
            raise ValueError("duplicate criterion")
        return value


class SettingsOverride(_Strict):
    system_prompt: str | None = None
    temperature: Num | None = Field(default=None, ge=0.0, le=2.0)
    top_p: Num | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: Int | None = Field(default=None, ge=1, le=131_072)
    samples: Int | None = Field(default=None, ge=1, le=100)
    orders: Literal["random", "both"] | None = None
    criteria: list[str] | None = Field(default=None, min_length=1, max_length=20)
    seed: Int | None = Field(default=None, ge=0, le=2**63 - 1)


class ContenderSpec(_Strict):
    backend: str = Field(min_length=1)
    model: str = Field(min_length=1, max_length=1000)
    options: dict[str, Any] = Field(default_factory=dict)
    limits: Limits | None = None


class JudgeSpec(_Strict):
    type: str = Field(min_length=1)
    backend: str | None = None
    model: str | None = Field(default=None, min_length=1, max_length=1000)
    backend_options: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    limits: Limits | None = None
    batch: bool = Field(default=False, description="judge through the provider's batch API")
    batch_poll_s: Num = Field(default=30.0, gt=0, le=3600, description="seconds between batch polls")


class PromptSpec(_Strict):
    id: str = Field(pattern=NAME_PATTERN)
    text: str = Field(min_length=1, max_length=1_000_000)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt text is empty")
        return value


class SectionSpec(SettingsOverride):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    prompts: list[Any] | None = Field(default=None, max_length=MAX_PROMPTS_PER_SECTION)
    prompts_file: str | None = Field(default=None, min_length=1)
    take: Int | None = Field(default=None, ge=1, le=MAX_PROMPTS_PER_SECTION)
    judges: list[str] | None = None


class SuiteSpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    seed: Int = Field(default=0, ge=0, le=2**63 - 1)
    baseline: str | None = None
    contenders: dict[str, ContenderSpec] = Field(min_length=2, max_length=50)
    judges: dict[str, JudgeSpec] = Field(default_factory=dict, max_length=50)
    defaults: Settings = Field(default_factory=Settings)
    sections: list[SectionSpec] = Field(min_length=1, max_length=1000)
    prices: dict[str, Price] = Field(default_factory=dict, description="USD per million tokens, by model id")
    judge_families: dict[str, list[str]] = Field(
        default_factory=dict, max_length=50,
        description="judges counted as one in the report (headline and agreement): family name -> judge names")
    max_stored_chars: Int = Field(default=DEFAULT_MAX_STORED_CHARS, ge=1_000, le=100_000_000,
                                  description="cap on each stored text (answer, raw verdict) in characters; "
                                              "a longer one is cut, marked and recorded as truncated")


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str


@dataclass(frozen=True)
class Section:
    """A section with its prompts loaded and its settings fully resolved."""

    name: str
    prompts: tuple[Prompt, ...]
    settings: Settings
    judges: tuple[str, ...]
    description: str | None = None


@dataclass(frozen=True)
class Suite:
    path: str
    spec: SuiteSpec
    sections: tuple[Section, ...]
    index: LineIndex

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def baseline(self) -> str:
        return self.spec.baseline or next(iter(self.spec.contenders))

    @property
    def candidates(self) -> list[str]:
        return [c for c in self.spec.contenders if c != self.baseline]

    def snapshot(self) -> dict[str, Any]:
        """The suite as run: every prompt inlined, safe to store (holds no key values by construction)."""
        data = self.spec.model_dump(mode="json")
        data["sections"] = [
            {"name": s.name, "description": s.description, "judges": list(s.judges),
             "settings": s.settings.model_dump(mode="json"),
             "prompts": [{"id": p.id, "text": p.text} for p in s.prompts]}
            for s in self.sections
        ]
        return data

    def fingerprint(self) -> str:
        """What identifies "the same suite" for resuming: everything that changes a unit, not prices or prose."""
        data = self.snapshot()
        # A storage cap does not change a unit, nor does grouping judges into families for the report.
        for key in ("prices", "description", "max_stored_chars", "judge_families"):
            data.pop(key, None)
        return stable_hash(data)

    def limited(self, limit: int | None) -> Suite:
        """The same suite with only the first `limit` prompts of each section (`--limit`)."""
        if not limit:
            return self
        sections = tuple(Section(s.name, s.prompts[:limit], s.settings, s.judges, s.description)
                         for s in self.sections)
        return Suite(self.path, self.spec, sections, self.index)

    def error(self, message: str, loc: tuple[str | int, ...]) -> InputError:
        return InputError(message, path=self.path, field=format_loc(loc) or None, line=self.index.line_for(loc))


def load_suite(path: str | Path) -> Suite:
    """Read, validate and resolve a suite file. Raises InputError on any problem."""
    spath = str(path)
    data, index = load_yaml(path)
    if not isinstance(data, dict):
        raise InputError("a suite must be a YAML mapping at the top level", path=spath, line=1)
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, spath, index, SuiteSpec) from None
    suite_dir = Path(path).resolve().parent
    sections = tuple(_resolve_section(spec, i, sec, suite_dir, spath, index) for i, sec in enumerate(spec.sections))
    suite = Suite(spath, spec, sections, index)
    _check_references(suite)
    return suite


def _resolve_section(spec: SuiteSpec, i: int, sec: SectionSpec, suite_dir: Path, spath: str,
                     index: LineIndex) -> Section:
    loc: tuple[str | int, ...] = ("sections", i)

    def err(message: str, *sub: str | int) -> InputError:
        return InputError(message, path=spath, field=format_loc(loc + sub), line=index.line_for(loc + sub))

    if (sec.prompts is None) == (sec.prompts_file is None):
        raise err("give exactly one of 'prompts' or 'prompts_file'")
    if sec.prompts is not None:
        raw_items: list[Any] = list(sec.prompts)
        item_loc: tuple[str | int, ...] = ("prompts",)
        source_path, source_index = spath, index
    else:
        file_path = _inside(suite_dir, sec.prompts_file or "", err)
        data, source_index = load_yaml(file_path)
        if isinstance(data, dict) and "prompts" in data:
            data = data["prompts"]
        if not isinstance(data, list):
            raise InputError("a prompts file must hold a YAML list of prompts", path=str(file_path), line=1)
        raw_items, item_loc, source_path = data, (), str(file_path)
    prompts: list[Prompt] = []
    for j, item in enumerate(raw_items):
        where = (loc + item_loc + (j,)) if source_path == spath else (j,)
        if isinstance(item, PromptSpec):
            item = item.model_dump()
        if isinstance(item, str):
            item = {"id": f"{sec.name}-{j + 1}", "text": item}
        try:
            p = PromptSpec.model_validate(item)
        except ValidationError as exc:
            raise validation_error(exc, source_path, source_index, PromptSpec, prefix=where) from None
        prompts.append(Prompt(p.id, p.text))
    if not prompts:
        raise err("the prompt list is empty", *(("prompts",) if sec.prompts is not None else ("prompts_file",)))
    seen: set[str] = set()
    for prompt in prompts:
        if prompt.id in seen:
            raise err(f"duplicate prompt id {prompt.id!r}", "prompts" if sec.prompts is not None else "prompts_file")
        seen.add(prompt.id)
    if sec.take is not None:
        prompts = prompts[: sec.take]
    overrides = sec.model_dump(include=set(SettingsOverride.model_fields), exclude_unset=True)
    settings = spec.defaults.model_copy(update={k: v for k, v in overrides.items() if v is not None or k == "system_prompt"})
    if settings.seed is None:
        settings = settings.model_copy(update={"seed": spec.seed})
    judges = tuple(sec.judges) if sec.judges is not None else tuple(spec.judges)
    return Section(sec.name, tuple(prompts), settings, judges, sec.description)


def _inside(root: Path, relative: str, err: Any) -> Path:
    """Resolve a path relative to the suite folder and refuse anything outside it."""
    try:
        candidate = confine(root, relative)
    except ValueError as exc:
        raise err(str(exc), "prompts_file") from None
    if not candidate.exists():
        raise err(f"prompts file {relative!r} not found", "prompts_file")
    return candidate


def _check_references(suite: Suite) -> None:
    spec = suite.spec
    for name in list(spec.contenders) + list(spec.judges):
        if not re.match(NAME_PATTERN, name):
            kind = "contenders" if name in spec.contenders else "judges"
            raise suite.error(f"name {name!r} must be letters, digits, '.', '_' or '-'", (kind, name))
    overlap = set(spec.contenders) & set(spec.judges)
    if overlap:
        raise suite.error(f"duplicate name {sorted(overlap)[0]!r} used for a contender and a judge", ("judges",))
    if spec.baseline is not None and spec.baseline not in spec.contenders:
        raise suite.error(f"unknown contender {spec.baseline!r} (contenders: {', '.join(spec.contenders)})",
                          ("baseline",))
    names: set[str] = set()
    for i, (sec, section) in enumerate(zip(spec.sections, suite.sections)):
        if section.name in names:
            raise suite.error(f"duplicate section name {section.name!r}", ("sections", i, "name"))
        names.add(section.name)
        for j, judge_name in enumerate(sec.judges or []):
            if judge_name not in spec.judges:
                known = ", ".join(spec.judges) or "none defined"
                raise suite.error(f"unknown judge {judge_name!r} (judges: {known})", ("sections", i, "judges", j))
    for kind, entries in (("contenders", spec.contenders), ("judges", spec.judges)):
        for name, entry in entries.items():
            for field_name in ("options", "backend_options"):
                _check_no_secrets(suite, getattr(entry, field_name, None) or {}, (kind, name, field_name))
    for name, judge in spec.judges.items():
        if judge.backend is not None and judge.model is None:
            raise suite.error("a judge with a backend needs a model", ("judges", name, "model"))
    _check_judge_families(suite)


def _check_judge_families(suite: Suite) -> None:
    """Each family groups known judges, no judge is in two, and no family takes another judge's or a contender's name.

    A family is one judge in the report, so its name must not be mistaken for a judge it does not hold.
    """
    spec = suite.spec
    owner: dict[str, str] = {}
    for family, members in spec.judge_families.items():
        loc: tuple[str | int, ...] = ("judge_families", family)
        if not re.match(NAME_PATTERN, family):
            raise suite.error(f"family name {family!r} must be letters, digits, '.', '_' or '-'", loc)
        if not members:
            raise suite.error(f"family {family!r} names no judge", loc)
        for j, member in enumerate(members):
            if member not in spec.judges:
                known = ", ".join(spec.judges) or "none defined"
                raise suite.error(f"unknown judge {member!r} (judges: {known})", loc + (j,))
            if member in owner:
                raise suite.error(f"judge {member!r} is in two families ({owner[member]!r} and {family!r})", loc + (j,))
            owner[member] = family
        if (family in spec.judges and family not in members) or family in spec.contenders:
            raise suite.error(f"family name {family!r} is already the name of a judge outside it or a contender", loc)


def _walk(value: Any, loc: tuple[str | int, ...], depth: int = 0) -> Iterator[tuple[tuple[str | int, ...], Any, Any]]:
    """(location, key or None, value) for every key and value nested in `value` (bounded depth)."""
    if depth > 64:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield loc + (str(key),), key, item
            yield from _walk(item, loc + (str(key),), depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield loc + (i,), None, item
            yield from _walk(item, loc + (i,), depth + 1)


def _check_no_secrets(suite: Suite, options: dict[str, Any], loc: tuple[str | int, ...]) -> None:
    """Refuse keys anywhere in options: secret-named fields, URLs with user info, key-shaped values."""
    fix = "never put keys in a suite; set an environment variable and name it with api_key_env"
    for where, key, value in _walk(options, loc):
        if key is not None and key != "api_key_env":
            norm = re.sub(r"[\s\-]+", "_", str(key))
            if SECRET_KEY_PATTERN.search(norm):
                raise suite.error(f"'{key}' looks like a secret: {fix}", where)
        if isinstance(value, str):
            if _URL_USERINFO.search(value):
                raise suite.error(f"this URL carries credentials (user info before '@'): {fix}", where)
            if _SECRET_VALUE.search(value):
                raise suite.error(f"this value looks like an API key or an Authorization header: {fix}", where)


def check_plugins(suite: Suite, registry: Any) -> None:
    """Check backend names, judge types and their options against the registered plugins."""
    spec = suite.spec
    for name, c in spec.contenders.items():
        backend_cls = _lookup(suite, registry.backends, c.backend, "backend", ("contenders", name, "backend"))
        opts = _validate_options(suite, backend_cls, c.options, ("contenders", name, "options"))
        _check_key_destination(suite, backend_cls, opts, ("contenders", name, "options"))
    for name, j in spec.judges.items():
        judge_cls = _lookup(suite, registry.judges, j.type, "judge type", ("judges", name, "type"))
        _validate_options(suite, judge_cls, j.options, ("judges", name, "options"))
        if judge_cls.needs_backend and j.backend is None:
            raise suite.error(f"judge type {j.type!r} needs a backend and a model", ("judges", name))
        if j.backend is not None:
            backend_cls = _lookup(suite, registry.backends, j.backend, "backend", ("judges", name, "backend"))
            opts = _validate_options(suite, backend_cls, j.backend_options, ("judges", name, "backend_options"))
            _check_key_destination(suite, backend_cls, opts, ("judges", name, "backend_options"))


def _lookup(suite: Suite, table: dict[str, Any], name: str, what: str, loc: tuple[str | int, ...]) -> Any:
    if name not in table:
        known = ", ".join(sorted(table)) or "none registered"
        raise suite.error(f"unknown {what} {name!r} (registered: {known})", loc)
    return table[name]


def _validate_options(suite: Suite, plugin_cls: Any, options: dict[str, Any], loc: tuple[str | int, ...]) -> Any:
    try:
        validated = plugin_cls.Options.model_validate(options)
    except ValidationError as exc:
        raise validation_error(exc, suite.path, suite.index, plugin_cls.Options, prefix=loc) from None
    _confine_path_options(suite, plugin_cls.Options, validated, loc)
    return validated


def _confine_path_options(suite: Suite, options_model: Any, validated: Any, loc: tuple[str | int, ...]) -> None:
    """Every option declared with `suite_path_field` must name an existing file inside the suite's folder."""
    root = Path(suite.path).resolve().parent
    for fname, finfo in options_model.model_fields.items():
        if not is_suite_path(finfo):
            continue
        value = getattr(validated, fname, None)
        items = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(items):
            if item is None:
                continue
            where = loc + (fname,) + ((i,) if isinstance(value, (list, tuple)) else ())
            try:
                target = confine(root, str(item))
            except ValueError as exc:
                raise suite.error(str(exc), where) from None
            if not target.exists():
                raise suite.error(f"file {str(item)!r} not found next to the suite", where)


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def _check_key_destination(suite: Suite, backend_cls: Any, options: Any, loc: tuple[str | int, ...]) -> None:
    """The environment's default key goes only to the provider's own host (`key_hosts`, over https).

    A `base_url` elsewhere (a gateway, a local server, an attacker's host) gets a
    key only when the suite names its variable (`api_key_env`); with
    `require_key: false` it gets none.
    """
    envs = tuple(getattr(backend_cls, "default_key_envs", ()) or ())
    base_url = getattr(options, "base_url", None)
    if not envs or not base_url or getattr(options, "api_key_env", None):
        return
    if getattr(options, "require_key", True) is False:
        return
    hosts = tuple(getattr(backend_cls, "key_hosts", ()) or ())
    try:
        parts = urlsplit(str(base_url))
    except ValueError:
        parts = None
    if parts is not None and parts.scheme == "https" and parts.hostname in hosts:
        return
    own = ", ".join(f"https://{h}" for h in hosts) or "its own host"
    raise suite.error(
        f"base_url sends calls to {_host_of(str(base_url))!r}, but the environment's {envs[0]} goes only to "
        f"{own}: name the key variable for this endpoint with api_key_env, or set require_key: false",
        loc + ("base_url",))


def destination_lines(runtime: Any) -> list[str]:
    """Where each contender's and judge's calls go, and which key variable they send: for validate and --dry-run."""
    return [" ".join(parts) for parts in destination_items(runtime)]


def destination_items(runtime: Any) -> list[list[str]]:
    """`destination_lines` in the parts a narrow terminal may break between (never inside one):
    who and which model, "-> endpoint", which key; the arrow always stays with its URL."""
    out: list[list[str]] = []
    for role, name, backend in [("contender", n, b) for n, b in runtime.contenders.items()] + \
            [("judge", n, j.backend) for n, j in runtime.judges.items()]:
        if backend is None:
            out.append([f"{role} {name}:", "no model backend (the judge itself decides)"])
            continue
        endpoint_fn = getattr(backend, "endpoint", None)
        endpoint = endpoint_fn() if callable(endpoint_fn) else None
        if endpoint is None:
            endpoint = "this machine" if getattr(backend, "local", False) else \
                "not reported by the plugin"
        keys = backend.key_env_names()
        key = f"key from {' or '.join(keys)}" if keys else "no key"
        out.append([f"{role} {name}: {backend.name} {backend.model}", f"-> {endpoint}", f"({key})"])
    return out
