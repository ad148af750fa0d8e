"""Import the original Brie Bench's JSONL results into a run, re-reading every verdict with our parser.

The original tool wrote one judgment per line (fields `config_name`,
`prompt_num`, `prompt`, `temperature`, `max_tokens`, `baseline_response` /
`baseline_output`, `brie_response` / `brie_output`, `judge_model`, `judgment`,
`presentation_order` AB|BA, `winner` brie|baseline|tie|unknown, `timestamp`,
sometimes `judge_type`, `baseline_length`, `brie_length`, `winner_ORIGINAL_BUGGY`).

What the import has to get right:

* In those files "Response A" always meant the baseline and "Response B" the
  fine-tune; only the print order changed. So every imported judgment has
  label_a = baseline, and its `presentation_order` (which of the pair's two
  mirror-image presentations the judge saw, as in every run) is the print
  order: 0 = AB (A, the baseline, printed first), 1 = BA (B first). The run is
  marked `legacy` and its report warns that labels were not randomised.
* Several files (one per judge re-run) hold the same comparisons: one
  comparison per distinct (prompt, baseline answer, fine-tune answer), one judge
  per `judge_model`.
* A line is dropped only when it is byte-identical to one already read: same
  comparison, judge, print order, judgment text and timestamp (a file pasted
  twice). The same judge judging the same comparison again, with its own text,
  is a *replicate*: an independent re-judgment, stored and counted. Replicates
  are numbered per (comparison, judge, print order) and the number is the
  ``-rN`` suffix of the unit key (none for the first), which `report.rows`
  reads back; they share their prompt's cluster like every other row.
* The stored `winner` is not trusted (the original tool inverted verdicts
  once): every `judgment` is re-parsed with `brie_bench.verdicts.parse_verdict`
  and every line where that reading differs from the stored winner is listed.
  Two shapes the general parser does not read are read here: "Winner: Neither
  (Tie)" (and none / draw / both / equal) is a tie, and the original prompt's
  score lines ("Response A - Creativity: 3, Coherence: 4, ...") are per-criterion
  1-5 scores.
* Some files have no `judge_model` (e.g. `claude_judge_evaluation.jsonl`): the
  judge then comes from `--judge NAME`, else from another field that names it
  (`judge`, `judge_name`, `evaluator`, `judged_by`, `judge_type`, ...); a line
  with neither is refused.
* Bad input fails with one line naming the file, line and field: a NaN or
  infinite number, a max_tokens that is not a positive whole number.
* ``--judge-family claude=claude-3-5-sonnet-20241022,claude-opus-4-20250514`` groups
  judges into one for the report (the original "Claude" column was Sonnet on 42 rows
  and Opus on the 15 re-judged ones). The grouping changes nothing stored but the
  run's `judge_families` (metadata and suite snapshot), which `report.rows` reads.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brie_bench.api import stable_hash
from brie_bench.blinding import Assignment, unblind
from brie_bench.bounded import TooDeep, loads_json, read_bytes
from brie_bench.errors import InputError
from brie_bench.records import DEFAULT_CRITERIA
from brie_bench.textsafe import normalise_prompt
from brie_bench.rows import GenerationRow, JudgmentRow
from brie_bench.store import Store
from brie_bench.verdicts import ParsedVerdict, normalise_criterion, parse_verdict

#: 2: replicates are kept (only byte-identical lines dropped), "Neither" ties and score lines read.
IMPORTER_VERSION = 2
LEGACY_WINNERS = ("brie", "baseline", "tie", "unknown")
ORDERS = {"AB": 0, "BA": 1}
DEFAULT_SECTION = "legacy"
#: Fields that name the judge in files written without `judge_model`, in the order tried.
JUDGE_FIELDS = ("judge", "judge_name", "evaluator", "evaluator_model", "judged_by", "grader", "judge_type")
#: A max_tokens above this is not a setting anyone ran with; it is bad input.
MAX_TOKENS_LIMIT = 10_000_000


@dataclass(frozen=True)
class LegacyLine:
    """One validated line of a legacy file.

    `presentation_order` is the line's ``presentation_order`` AB|BA as 0 or 1: which of the
    pair's two mirror-image presentations the judge saw. Labels never moved in these files
    (A = baseline), so the mirror swaps the print order: 0 = A printed first, 1 = B first.
    """

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
    presentation_order: int
    winner: str
    #: The line's timestamp as written (JSON text), "" when absent: part of what makes a line a byte-identical copy.
    timestamp: str = ""


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
    replicates: int = 0
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    judge_families: dict[str, list[str]] = field(default_factory=dict)


FAMILY_FIELD = "--judge-family"


def parse_judge_family(text: str) -> tuple[str, list[str]]:
    """``NAME=JUDGE,JUDGE`` (a `--judge-family` value) -> (name, judges); bad text is one InputError."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    members = [m.strip() for m in rest.split(",")]
    if not sep or not name or not rest.strip():
        raise InputError(f"expected NAME=JUDGE,JUDGE,..., got {text!r}", field=FAMILY_FIELD)
    if any(not m for m in members):
        raise InputError(f"empty judge name in {text!r}", field=FAMILY_FIELD)
    if len(set(members)) != len(members):
        raise InputError(f"a judge is named twice in {text!r}", field=FAMILY_FIELD)
    return name, members


def check_judge_families(families: dict[str, list[str]], judges: Sequence[str]) -> dict[str, list[str]]:
    """Refuse a family that names a judge not in the files, shares a judge, or takes another judge's name.

    A family's name may be one of its own members' names, never another judge's: the
    report would then merge two judges the user did not group.
    """
    known = set(judges)
    owner: dict[str, str] = {}
    for name, members in families.items():
        if not members:
            raise InputError(f"family {name!r} names no judge", field=FAMILY_FIELD)
        for m in members:
            if m not in known:
                raise InputError(f"unknown judge {m!r} in family {name!r} (judges in the files: {', '.join(judges)})",
                                 field=FAMILY_FIELD)
            if m in owner:
                raise InputError(f"judge {m!r} is in two families ({owner[m]!r} and {name!r})", field=FAMILY_FIELD)
            owner[m] = name
        if name in known and name not in members:
            raise InputError(f"family name {name!r} is already the name of a judge outside it", field=FAMILY_FIELD)
    return {name: list(members) for name, members in families.items()}


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
    """A finite number or None; JSON's NaN, Infinity and overflowing literals (1e400) are bad input."""
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"must be a number, got {value!r}", path=path, line=line, field=name)
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"must be a finite number, got {value!r}", path=path, line=line, field=name)
    return value


def _max_tokens(obj: dict[str, Any], path: str, line: int) -> int | None:
    value = _number(obj, "max_tokens", path, line)
    if value is None:
        return None
    if value != int(value) or not 0 < value <= MAX_TOKENS_LIMIT:
        raise InputError(f"must be a whole number from 1 to {MAX_TOKENS_LIMIT:,}, got {value!r}", path=path,
                         line=line, field="max_tokens")
    return int(value)


def _judge(obj: dict[str, Any], path: str, line: int, default_judge: str | None) -> str:
    """The judge of one line: `judge_model`, else --judge, else another field that names it."""
    if "judge_model" in obj:
        judge_model = (_text(obj, ("judge_model",), path, line) or "").strip()
        if not judge_model:
            raise InputError("is empty", path=path, line=line, field="judge_model")
        return judge_model
    if default_judge:
        return default_judge
    for name in JUDGE_FIELDS:
        value = obj.get(name)
        if isinstance(value, str) and value.strip() and value.strip().lower() not in ("legacy", "unknown", "none"):
            return value.strip()
    raise InputError("missing field, and no other field names the judge (" + ", ".join(JUDGE_FIELDS)
                     + "); pass --judge NAME", path=path, line=line, field="judge_model")


def parse_line(obj: Any, path: str, line: int, default_judge: str | None = None) -> LegacyLine:
    """Validate one decoded JSON line; raises InputError naming file, line and field."""
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=line)
    prompt = _text(obj, ("prompt",), path, line) or ""
    if not prompt.strip():
        raise InputError("is empty", path=path, line=line, field="prompt")
    judge_model = _judge(obj, path, line, default_judge)
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
    max_tokens = _max_tokens(obj, path, line)
    temperature = _number(obj, "temperature", path, line)
    if temperature is not None and temperature < 0:
        raise InputError(f"must not be negative, got {temperature!r}", path=path, line=line, field="temperature")
    judge_type = obj.get("judge_type")
    return LegacyLine(
        file=path, line=line, section=(config or "").strip() or DEFAULT_SECTION,
        prompt_num=None if num is None else str(num), prompt=prompt,
        temperature=temperature,
        max_tokens=max_tokens,
        baseline_text=_text(obj, ("baseline_response", "baseline_output"), path, line) or "",
        brie_text=_text(obj, ("brie_response", "brie_output"), path, line) or "",
        judge_model=judge_model,
        judge_type=judge_type.strip() if isinstance(judge_type, str) and judge_type.strip() else "legacy",
        judgment=_text(obj, ("judgment",), path, line) or "",
        presentation_order=ORDERS[order], winner=winner,
        timestamp=json.dumps(obj.get("timestamp"), sort_keys=True, ensure_ascii=False),
    )


#: The largest legacy export read (the real ones are a few MB; the biggest of 41 files was under 10 MB).
MAX_LEGACY_BYTES = 256 * 1024 * 1024


def read_legacy(path: str | Path, default_judge: str | None = None) -> list[LegacyLine]:
    """Every judgment in one legacy JSONL file (blank lines skipped)."""
    spath = str(path)
    raw = read_bytes(path, MAX_LEGACY_BYTES, "legacy file")  # regular files only: no FIFO, device or 5 GB file
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError("not UTF-8 text", path=spath, line=raw[:exc.start].count(b"\n") + 1) from None
    out = []
    # JSON Lines ends a record at \n only: str.splitlines() would also split inside strings at U+2028,
    # U+2029, U+0085, \x0b, \x1c..., which JSON allows raw, and refuse a valid line as "Unterminated string".
    for number, text in enumerate(content.split("\n"), start=1):
        if not text.strip():
            continue
        try:
            obj = loads_json(text)  # depth-bounded: a deeply nested line is one error, not a RecursionError
        except TooDeep as exc:
            raise InputError(f"JSON {exc}", path=spath, line=number) from None
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno})", path=spath, line=number) from None
        except ValueError as exc:  # e.g. an integer of more than 4,300 digits (sys.int_info.str_digits_check_threshold)
            raise InputError(f"not valid JSON here ({' '.join(str(exc).split())[:160]})", path=spath,
                             line=number) from None
        out.append(parse_line(obj, spath, number, default_judge))
    if not out:
        raise InputError("no judgments in file", path=spath)
    return out


_LEGACY_WORD = {"A": "baseline", "B": "brie", "tie": "tie", "invalid": "unknown"}

# "Winner: Neither (Tie)", "**Winner:** None - both equal", "Verdict: draw": a tie in the original tool's words.
_NEITHER = re.compile(r"^[\s>#*_`-]*(?:final\s+)?(?:winner|verdict)[\s*_`]*[:\-\u2013\u2014][\s*_`\[(\"']*"
                      r"(?:neither|none|no\s+winner|draw|both|equal|even)\b[\s*_`'\"\])]*"
                      r"(?:$|[(\-\u2013\u2014,.;:]|tie\b)", re.IGNORECASE)
# "Response A - Creativity: 3, Coherence: 4, Depth: 2, Engagement: 3, Quality: 4" (the original prompt's format).
_SCORE_LINE = re.compile(r"^[\s>#*_`-]*(?:response|answer)\s+(?P<label>[AB])[\s*_`]*[-\u2013\u2014:][\s*_`]*"
                         r"(?P<rest>.+)$", re.IGNORECASE)
_SCORE_ITEM = re.compile(r"(?P<name>[A-Za-z][A-Za-z &/]*?)\s*(?:\([^()]*\))?\s*[:=]\s*(?P<value>\d+(?:\.\d+)?)"
                         r"(?:\s*/\s*(?P<den>\d+))?")


def _criterion(name: str) -> str:
    """Map the original prompt's names ("Quality", "Creativity & Originality") onto Brie Bench's criteria."""
    n = normalise_criterion(name.replace("&", " "))
    for c in DEFAULT_CRITERIA:
        if n == c or c.endswith("_" + n) or n.split("_")[0] == c.split("_")[0]:
            return c
    return n


def legacy_scores(text: str) -> dict[str, dict[str, int]] | None:
    """Per-criterion 1-5 scores from the original prompt's score lines; None when the text has none.

    Only lines that start with "Response A" / "Response B" and hold at least one
    "Name: number" item count; a number outside 1-5 (or a denominator other than 5)
    is dropped, never clamped. The last line for a label wins.
    """
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        m = _SCORE_LINE.match(line.replace("**", ""))
        if not m:
            continue
        got: dict[str, int] = {}
        for item in _SCORE_ITEM.finditer(m.group("rest")):
            value = float(item.group("value"))
            if item.group("den") not in (None, "5") or not value.is_integer() or not 1 <= value <= 5:
                continue
            got[_criterion(item.group("name"))] = int(value)
        if got:
            out[m.group("label").upper()] = got
    return dict(sorted(out.items())) or None


def read_judgment(text: str) -> ParsedVerdict:
    """`parse_verdict`, plus the two shapes only the original tool's judges wrote.

    A verdict line saying "Neither" / "None" / "Draw" / "Both" is a tie (the general
    parser leaves it invalid, as it should for unknown judges); the score lines of the
    original prompt fill in per-criterion scores when the general parser found none.
    """
    parsed = parse_verdict(text)
    label, reason = parsed.label, parsed.invalid_reason
    if label == "invalid" and any(_NEITHER.match(line) for line in text.splitlines()):
        label, reason = "tie", None
    scores = parsed.scores or legacy_scores(text)
    return ParsedVerdict(label, scores, parsed.reasoning, reason)


def import_legacy(store: Store, paths: Sequence[str | Path], *, baseline: str = "baseline",
                  candidate: str = "brie", name: str | None = None, new: bool = False,
                  judge: str | None = None, judge_families: dict[str, list[str]] | None = None) -> ImportResult:
    """Import legacy files into one run of `store` and return what happened.

    Importing the same files again returns the run already made (``reused``),
    unless `new` is true; a run a killed import left unfinished (not `complete`)
    is finished in place instead. All files are validated before anything is written.
    `judge` names the judge of lines that have no `judge_model`; `judge_families`
    (family -> judges) groups judges for the report, and is checked against the files.
    """
    if baseline == candidate or "tie" in (baseline, candidate):
        raise InputError(f"contender names must differ and not be 'tie' (got {baseline!r}, {candidate!r})")
    judge = judge.strip() if judge and judge.strip() else None
    lines = [row for p in paths for row in read_legacy(p, judge)]
    digests = sorted(hashlib.sha256(read_bytes(p, MAX_LEGACY_BYTES, "legacy file")).hexdigest() for p in paths)
    families = check_judge_families(dict(judge_families or {}), list(dict.fromkeys(r.judge_model for r in lines)))
    fingerprint = stable_hash({"legacy_import": IMPORTER_VERSION, "files": digests, "baseline": baseline,
                               "candidate": candidate, "judge": judge,
                               **({"judge_families": families} if families else {})})
    resume: str | None = None
    if not new:
        existing = store.find_resumable_run(fingerprint, 0)
        if existing:
            found = store.run(existing)
            if found.status == "complete":
                meta = found.metadata
                return ImportResult(existing, True, meta.get("rows", 0), meta.get("comparisons", 0),
                                    meta.get("prompts", 0), list((meta.get("judges") or {}).keys()),
                                    meta.get("duplicates", 0), meta.get("replicates", 0),
                                    meta.get("disagreements") or [], meta.get("judge_families") or {})
            # An import that was killed part-way (left `running`): finish it in the same run. Every key below
            # is derived from the files' content and every save ignores a row already stored, so redoing the
            # whole loop stores exactly what is missing.
            resume = existing

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
    contenders: dict[str, dict[str, Any]] = {
        baseline: {"backend": "legacy", "model": baseline, "options": {}, "provenance": None, "role": "baseline"},
        candidate: {"backend": "legacy", "model": candidate, "options": {}, "provenance": None, "role": "candidate"},
    }
    judge_meta: dict[str, dict[str, Any]] = {
        j: {"name": j, "judge": next(r.judge_type for r in lines if r.judge_model == j), "model": j,
            "backend": None, "options": {}} for j in judges}
    snapshot = {"name": suite_name, "description": "Imported from the original Brie Bench (labels not randomised).",
                "baseline": baseline, "contenders": contenders, "judges": judge_meta,
                "sections": [{"name": s, "description": None, "judges": judges, "settings": {},
                              "prompts": prompts} for s, prompts in sections.items()],
                "judge_families": families}
    assignment = Assignment(baseline, candidate)  # "Response A" was always the baseline
    from brie_bench.runtime import versions

    run_id = resume or store.create_run(suite_name=suite_name, suite_path=", ".join(files), fingerprint=fingerprint,
                                        snapshot=snapshot, seed=0, versions=versions(),
                                        metadata={"legacy": True, "labels_randomised": False})
    store.mark_run(run_id, "running")
    gen_keys: dict[tuple[str, str, str], str] = {}
    links: list[tuple[str, str, int, str, str]] = []
    seen_lines: set[tuple[str, ...]] = set()
    replicate_of: dict[str, int] = {}
    judged: set[tuple[str, str, int, str]] = set()  # (section, prompt id, sample, judge) already judged
    replicates = 0
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
                store.save_generation(GenerationRow(
                    key=key, backend="legacy", model=contender, spec=contenders[contender],
                    messages=[{"role": "user", "content": row.prompt}],
                    params={"temperature": row.temperature, "max_tokens": row.max_tokens},
                    sample_index=sample, text=text, finish_reason=None, input_tokens=0, output_tokens=0,
                    latency_s=0.0))
                links.append((section, pid, sample, contender, key))
            keys[contender] = gen_keys[gkey]
        identity = (row.prompt, row.baseline_text, row.brie_text, row.judge_model, str(row.presentation_order),
                    row.judgment, row.timestamp)
        if identity in seen_lines:  # byte-identical copy of a line already imported
            duplicates.append({"file": row.file, "line": row.line})
            continue
        seen_lines.add(identity)
        base_unit = stable_hash({"legacy": IMPORTER_VERSION, "section": section, "prompt": pid, "sample": sample,
                                 "judge": row.judge_model})[:40] + f"-{row.presentation_order}"
        replicate = replicate_of.get(base_unit, 0)
        replicate_of[base_unit] = replicate + 1
        replicates += (section, pid, sample, row.judge_model) in judged  # any re-judgment, either print order
        judged.add((section, pid, sample, row.judge_model))
        unit = base_unit + (f"-r{replicate}" if replicate else "")
        parsed = read_judgment(row.judgment)
        ours = _LEGACY_WORD[parsed.label]
        if ours != row.winner:
            disagreements.append({"file": row.file, "line": row.line, "judge": row.judge_model, "section": section,
                                  "prompt_id": pid, "sample_index": sample, "stored": row.winner, "parsed": ours,
                                  "reason": parsed.invalid_reason})
        store.save_judgment(JudgmentRow(
            run_id=run_id, unit_key=unit, section=section, prompt_id=pid, sample_index=sample,
            judge=row.judge_model, judge_type=row.judge_type, judge_model=row.judge_model,
            baseline=baseline, candidate=candidate, presentation_order=row.presentation_order,
            label_a=baseline, label_b=candidate, gen_key_a=keys[baseline], gen_key_b=keys[candidate],
            verdict=parsed.label, winner=unblind(parsed.label, assignment), p_a=None,
            scores=dict(parsed.scores) if parsed.scores else None, reasoning=parsed.reasoning,
            invalid_reason=parsed.invalid_reason, raw=row.judgment,
        ))
    store.link_generations(run_id, links)
    n_texts = len({normalise_prompt(text) for _, text in prompt_ids})
    result = ImportResult(run_id, False, len(lines), len(comparisons), n_texts, judges, len(duplicates),
                          replicates, disagreements, families)
    store.update_run_metadata(run_id, {
        "legacy": True, "labels_randomised": False, "importer_version": IMPORTER_VERSION, "files": files,
        "baseline": baseline, "contenders": contenders, "judges": judge_meta, "rows": result.lines,
        "comparisons": result.comparisons, "prompts": result.prompts, "duplicates": result.duplicates,
        "replicates": result.replicates, "judge_families": families,
        "duplicate_lines": duplicates[:1000], "disagreements": disagreements,
    })
    store.mark_run(run_id, "complete")
    return result
