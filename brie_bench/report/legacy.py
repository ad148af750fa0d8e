"""Import the original Brie Bench's JSONL results into a run, re-reading every verdict with our parser.

The original tool wrote one judgment per line (fields `config_name`,
`prompt_num`, `prompt`, `temperature`, `max_tokens`, `baseline_response` /
`baseline_output`, `brie_response` / `brie_output`, `judge_model`, `judgment`,
`presentation_order` AB|BA, `winner` brie|baseline|tie|unknown, `timestamp`,
sometimes `judge_type`, `baseline_length`, `brie_length`, `winner_ORIGINAL_BUGGY`).

What the import has to get right:

* In those files "Response A" always meant the baseline and "Response B" the
  fine-tune; only the print order changed. So every imported judgment has
  label_a = baseline, and the print order is kept in `order_index` (0 = AB,
  baseline printed first; 1 = BA). The run is marked `legacy` and its report
  warns that labels were not randomised.
* Several files (one per judge re-run) hold the same comparisons: one
  comparison per distinct (prompt, baseline answer, fine-tune answer), one judge
  per `judge_model`. A line repeating a (comparison, judge, print order) already
  imported is a duplicate and is skipped (and counted).
* The stored `winner` is not trusted (the original tool inverted verdicts
  once): every `judgment` is re-parsed with `brie_bench.verdicts.parse_verdict`
  and every line where that reading differs from the stored winner is listed.
* Bad input fails with one line naming the file, line and field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from brie_bench.api import stable_hash
from brie_bench.blinding import Assignment, unblind
from brie_bench.errors import InputError
from brie_bench.store import Store
from brie_bench.verdicts import parse_verdict

IMPORTER_VERSION = 1
LEGACY_WINNERS = ("brie", "baseline", "tie", "unknown")
ORDERS = {"AB": 0, "BA": 1}
DEFAULT_SECTION = "legacy"


@dataclass(frozen=True)
class LegacyLine:
    """One validated line of a legacy file."""

    file: str
    line: int
    section: str
    prompt_num: str | None
    prompt: str
    temperature: float | None
    max_tokens: int | None
    baseline_text: str
    brie_text: str
    judge_model: str
    judge_type: str
    judgment: str
    order_index: int
    winner: str


@dataclass
class ImportResult:
    """What an import did; `disagreements` lists every line our parser reads differently."""

    run_id: str
    reused: bool
    lines: int = 0
    comparisons: int = 0
    prompts: int = 0
    judges: list[str] = field(default_factory=list)
    duplicates: int = 0
    disagreements: list[dict[str, Any]] = field(default_factory=list)


def _text(obj: dict[str, Any], names: Sequence[str], path: str, line: int, *, required: bool = True) -> str | None:
    for name in names:
        if name in obj:
            value = obj[name]
            if not isinstance(value, str):
                raise InputError(f"must be a string, got {type(value).__name__}", path=path, line=line, field=name)
            return value
    if required:
        raise InputError("missing field" + (f" (or {', '.join(names[1:])})" if len(names) > 1 else ""),
                         path=path, line=line, field=names[0])
    return None


def _number(obj: dict[str, Any], name: str, path: str, line: int) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"must be a number, got {value!r}", path=path, line=line, field=name)
    return value


def parse_line(obj: Any, path: str, line: int) -> LegacyLine:
    """Validate one decoded JSON line; raises InputError naming file, line and field."""
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=line)
    prompt = _text(obj, ("prompt",), path, line) or ""
    if not prompt.strip():
        raise InputError("is empty", path=path, line=line, field="prompt")
    judge_model = (_text(obj, ("judge_model",), path, line) or "").strip()
    if not judge_model:
        raise InputError("is empty", path=path, line=line, field="judge_model")
    order = (_text(obj, ("presentation_order",), path, line) or "").strip().upper()
    if order not in ORDERS:
        raise InputError(f"must be AB or BA, got {obj['presentation_order']!r}", path=path, line=line,
                         field="presentation_order")
    winner = (_text(obj, ("winner",), path, line) or "").strip().lower()
    if winner not in LEGACY_WINNERS:
        raise InputError(f"must be one of {', '.join(LEGACY_WINNERS)}, got {obj['winner']!r}", path=path, line=line,
                         field="winner")
    config = obj.get("config_name")
    if config is not None and not isinstance(config, str):
        raise InputError("must be a string", path=path, line=line, field="config_name")
    num = obj.get("prompt_num")
    if num is not None and (isinstance(num, bool) or not isinstance(num, (int, str))):
        raise InputError(f"must be a number or string, got {num!r}", path=path, line=line, field="prompt_num")
    max_tokens = _number(obj, "max_tokens", path, line)
    judge_type = obj.get("judge_type")
    return LegacyLine(
        file=path, line=line, section=(config or "").strip() or DEFAULT_SECTION,
        prompt_num=None if num is None else str(num), prompt=prompt,
        temperature=_number(obj, "temperature", path, line),
        max_tokens=None if max_tokens is None else int(max_tokens),
        baseline_text=_text(obj, ("baseline_response", "baseline_output"), path, line) or "",
        brie_text=_text(obj, ("brie_response", "brie_output"), path, line) or "",
        judge_model=judge_model,
        judge_type=judge_type.strip() if isinstance(judge_type, str) and judge_type.strip() else "legacy",
        judgment=_text(obj, ("judgment",), path, line) or "",
        order_index=ORDERS[order], winner=winner,
    )


def read_legacy(path: str | Path) -> list[LegacyLine]:
    """Every judgment in one legacy JSONL file (blank lines skipped)."""
    spath = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path=spath) from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError("not UTF-8 text", path=spath, line=raw[:exc.start].count(b"\n") + 1) from None
    out = []
    for number, text in enumerate(content.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno})", path=spath, line=number) from None
        out.append(parse_line(obj, spath, number))
    if not out:
        raise InputError("no judgments in file", path=spath)
    return out


_LEGACY_WORD = {"A": "baseline", "B": "brie", "tie": "tie", "invalid": "unknown"}


def import_legacy(store: Store, paths: Sequence[str | Path], *, baseline: str = "baseline",
                  candidate: str = "brie", name: str | None = None, new: bool = False) -> ImportResult:
    """Import legacy files into one run of `store` and return what happened.

    Importing the same files again returns the run already made (``reused``),
    unless `new` is true. All files are validated before anything is written.
    """
    if baseline == candidate or "tie" in (baseline, candidate):
        raise InputError(f"contender names must differ and not be 'tie' (got {baseline!r}, {candidate!r})")
    lines = [row for p in paths for row in read_legacy(p)]
    digests = sorted(hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths)
    fingerprint = stable_hash({"legacy_import": IMPORTER_VERSION, "files": digests, "baseline": baseline,
                               "candidate": candidate})
    if not new:
        existing = store.find_resumable_run(fingerprint, 0)
        if existing:
            meta = store.run(existing).metadata
            return ImportResult(existing, True, meta.get("rows", 0), meta.get("comparisons", 0),
                                meta.get("prompts", 0), list((meta.get("judges") or {}).keys()),
                                meta.get("duplicates", 0), meta.get("disagreements") or [])

    # Comparisons: one per distinct (prompt, baseline answer, fine-tune answer), first-seen order.
    prompt_ids: dict[tuple[str, str], str] = {}        # (section, prompt text) -> id
    used_ids: dict[str, set[str]] = {}
    comparisons: dict[tuple[str, str, str], tuple[str, str, int]] = {}  # -> (section, prompt id, sample)
    samples: dict[tuple[str, str], int] = {}
    for row in lines:
        ckey = (row.prompt, row.baseline_text, row.brie_text)
        if ckey in comparisons:
            continue
        pkey = (row.section, row.prompt)
        if pkey not in prompt_ids:
            taken = used_ids.setdefault(row.section, set())
            pid = row.prompt_num if row.prompt_num and row.prompt_num not in taken else None
            if pid is None:
                n = len(taken) + 1
                while f"p{n}" in taken:
                    n += 1
                pid = f"p{n}"
            taken.add(pid)
            prompt_ids[pkey] = pid
        pid = prompt_ids[pkey]
        sample = samples.get((row.section, pid), 0)
        samples[(row.section, pid)] = sample + 1
        comparisons[ckey] = (row.section, pid, sample)

    files = [str(p) for p in paths]
    judges = list(dict.fromkeys(r.judge_model for r in lines))
    sections: dict[str, list[dict[str, str]]] = {}
    for (section, text), pid in prompt_ids.items():
        sections.setdefault(section, []).append({"id": pid, "text": text})
    suite_name = name or "legacy: " + ", ".join(Path(p).stem for p in paths)
    contenders = {
        baseline: {"backend": "legacy", "model": baseline, "options": {}, "provenance": None, "role": "baseline"},
        candidate: {"backend": "legacy", "model": candidate, "options": {}, "provenance": None, "role": "candidate"},
    }
    judge_meta = {j: {"name": j, "judge": next(r.judge_type for r in lines if r.judge_model == j), "model": j,
                      "backend": None, "options": {}} for j in judges}
    snapshot = {"name": suite_name, "description": "Imported from the original Brie Bench (labels not randomised).",
                "baseline": baseline, "contenders": contenders, "judges": judge_meta,
                "sections": [{"name": s, "description": None, "judges": judges, "settings": {},
                              "prompts": prompts} for s, prompts in sections.items()]}
    assignment = Assignment(baseline, candidate)  # "Response A" was always the baseline
    from brie_bench.runtime import versions

    run_id = store.create_run(suite_name=suite_name, suite_path=", ".join(files), fingerprint=fingerprint,
                              snapshot=snapshot, seed=0, versions=versions(),
                              metadata={"legacy": True, "labels_randomised": False})
    store.mark_run(run_id, "running")
    gen_keys: dict[tuple[str, str, str], str] = {}
    links: list[tuple[str, str, int, str, str]] = []
    seen_units: set[str] = set()
    duplicates: list[dict[str, Any]] = []
    disagreements: list[dict[str, Any]] = []
    for row in lines:
        section, pid, sample = comparisons[(row.prompt, row.baseline_text, row.brie_text)]
        keys = {}
        for contender, text in ((baseline, row.baseline_text), (candidate, row.brie_text)):
            gkey = (contender, row.prompt, text)
            if gkey not in gen_keys:
                key = "legacy-" + stable_hash({"importer": IMPORTER_VERSION, "contender": contender,
                                               "prompt": row.prompt, "text": text})[:40]
                gen_keys[gkey] = key
                store.save_generation(key=key, backend="legacy", model=contender, spec=contenders[contender],
                                      messages=[{"role": "user", "content": row.prompt}],
                                      params={"temperature": row.temperature, "max_tokens": row.max_tokens},
                                      sample_index=sample, text=text, finish_reason=None, input_tokens=0,
                                      output_tokens=0, latency_s=0.0)
                links.append((section, pid, sample, contender, key))
            keys[contender] = gen_keys[gkey]
        unit = stable_hash({"legacy": IMPORTER_VERSION, "section": section, "prompt": pid, "sample": sample,
                            "judge": row.judge_model})[:40] + f"-{row.order_index}"
        if unit in seen_units:
            duplicates.append({"file": row.file, "line": row.line})
            continue
        seen_units.add(unit)
        parsed = parse_verdict(row.judgment)
        ours = _LEGACY_WORD[parsed.label]
        if ours != row.winner:
            disagreements.append({"file": row.file, "line": row.line, "judge": row.judge_model, "section": section,
                                  "prompt_id": pid, "sample_index": sample, "stored": row.winner, "parsed": ours,
                                  "reason": parsed.invalid_reason})
        store.save_judgment({
            "run_id": run_id, "unit_key": unit, "section": section, "prompt_id": pid, "sample_index": sample,
            "judge": row.judge_model, "judge_type": row.judge_type, "judge_model": row.judge_model,
            "baseline": baseline, "candidate": candidate, "order_index": row.order_index,
            "label_a": baseline, "label_b": candidate, "gen_key_a": keys[baseline], "gen_key_b": keys[candidate],
            "verdict": parsed.label, "winner": unblind(parsed.label, assignment), "p_a": None,
            "scores": dict(parsed.scores) if parsed.scores else None, "reasoning": parsed.reasoning,
            "invalid_reason": parsed.invalid_reason, "raw": row.judgment,
        })
    store.link_generations(run_id, links)
    result = ImportResult(run_id, False, len(lines), len(comparisons), len(prompt_ids), judges, len(duplicates),
                          disagreements)
    store.update_run_metadata(run_id, {
        "legacy": True, "labels_randomised": False, "importer_version": IMPORTER_VERSION, "files": files,
        "baseline": baseline, "contenders": contenders, "judges": judge_meta, "rows": result.lines,
        "comparisons": result.comparisons, "prompts": result.prompts, "duplicates": result.duplicates,
        "duplicate_lines": duplicates[:1000], "disagreements": disagreements,
    })
    store.mark_run(run_id, "complete")
    return result
