"""Shared pieces for the load, fault and hostile-input tests: a loopback provider with a
deterministic "model" and "judge", suites that point every backend at it, and readers for
the run summary and the store.

Imported by the tests as ``from hostile.kit import ...`` (tests/ is on sys.path).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any
from collections.abc import Mapping

import yaml

from brie_bench.testing.loopback import Answer, Call, LoopbackProvider

#: The judging template's fences; the fake judge reads the answers from between them.
_FENCE = re.compile(r"<response_(a|b)>\n?(.*?)\n?</response_\1>", re.S)


def loopback(responder: Any = None, **kwargs: Any) -> LoopbackProvider:
    """A loopback provider answering with `responder_for()` by default; use it in a `with` block."""
    return LoopbackProvider(responder or responder_for(), **kwargs)


def fenced(prompt: str) -> dict[str, str]:
    """The two answers the judging template fenced, by label (empty for a contender's prompt)."""
    return {m.group(1).upper(): m.group(2) for m in _FENCE.finditer(prompt)}


def judge_pick(answer_a: str, answer_b: str) -> str:
    """A deterministic verdict from the two answers: prefers the candidate's marker, else a hash."""
    in_a, in_b = "[brie]" in answer_a, "[brie]" in answer_b
    if in_a != in_b:
        return "A" if in_a else "B"
    digest = hashlib.sha256((answer_a + "\x00" + answer_b).encode("utf-8", "surrogatepass")).digest()
    return "AB"[digest[0] % 2] if digest[1] % 5 else "tie"


def responder_for(answers: Mapping[str, str] | None = None, *, judge: Any = None) -> Any:
    """A responder: contenders answer from (model, prompt); judges read the fences and pick.

    `answers` maps a prompt substring to a fixed answer text (hostile answers); `judge`
    replaces `judge_pick` (e.g. a judge that always says "A").
    """
    pick = judge or judge_pick

    def respond(call: Call) -> str | Answer | dict[str, Any]:
        labels = fenced(call.prompt)
        if set(labels) == {"A", "B"}:  # a judging call: the template fenced two answers
            label = pick(labels.get("A", ""), labels.get("B", ""))
            if call.schema:
                return {"reasoning": "compared both", "winner": label,
                        "scores": {"A": {"depth": 3}, "B": {"depth": 4}}}
            return f"Reasoning: compared both.\ndepth: A=3, B=4\nWinner: {label}"
        for needle, text in (answers or {}).items():
            if needle in call.prompt:
                return text
        marker = " [brie]" if "brie" in call.model else ""
        return f"{call.model} says: thoughts on {call.prompt[:60]}{marker}"

    return respond


def contender(server: LoopbackProvider, model: str, **options: Any) -> dict[str, Any]:
    """A contender served by an OpenAI-compatible server (as vLLM would serve it)."""
    return {"backend": "openai", "model": model,
            "options": {"base_url": server.openai_url, "require_key": False, **options}}


def llm_judge(server: LoopbackProvider, provider: str = "openai", *, model: str = "judge-model",
              verdict: str = "text", limits: dict[str, Any] | None = None,
              backend_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """An `llm` judge whose backend talks to the loopback in `provider`'s wire protocol."""
    # A loopback is not the provider's own host: it gets no key unless the suite names one (api_key_env).
    opts: dict[str, Any] = {"base_url": server.url(provider), "require_key": False}
    opts.update(backend_options or {})
    spec: dict[str, Any] = {"type": "llm", "backend": provider, "model": model, "backend_options": opts,
                            "options": {"verdict": verdict}}
    if limits:
        spec["limits"] = limits
    return spec


def loopback_suite(server: LoopbackProvider, *, prompts: int = 6, sections: int = 1, both: bool = False,
                   seed: int = 7, judges: dict[str, Any] | None = None, name: str = "loopback",
                   limits: dict[str, Any] | None = None, prompt_texts: list[str] | None = None,
                   **defaults: Any) -> dict[str, Any]:
    """A suite with two openai contenders and one llm judge, all on the loopback."""
    base, brie = contender(server, "base-model"), contender(server, "brie-model")
    if limits:
        base["limits"] = dict(limits)
        brie["limits"] = dict(limits)
    secs = []
    for s in range(sections):
        texts = prompt_texts or [f"Question {s}.{i}: what is worth saying about topic {i}?" for i in range(prompts)]
        sec: dict[str, Any] = {"name": f"section-{s}", "prompts": list(texts)}
        if both and s == 0:
            sec["orders"] = "both"
        secs.append(sec)
    return {"name": name, "seed": seed, "baseline": "baseline",
            "contenders": {"baseline": base, "brie": brie},
            "judges": judges if judges is not None else {"judge": llm_judge(server, limits=limits)},
            "defaults": {"max_tokens": 64, **defaults}, "sections": secs}


def write_suite(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


SUMMARY = re.compile(
    r"generations: (\d+) new, (\d+) cached, (\d+) failed; judgments: (\d+) new, (\d+) stored, (\d+) failed, "
    r"(\d+) waiting on failed generations; model calls: (\d+), retries: (\d+)")
SUMMARY_KEYS = ("gen_new", "gen_cached", "gen_failed", "judg_new", "judg_stored", "judg_failed", "judg_waiting",
                "calls", "retries")


def summary(output: str) -> dict[str, int]:
    """The counts of the summary line (wrapped lines are joined first)."""
    m = SUMMARY.search(" ".join(output.split()))
    assert m, f"no summary line in output:\n{output}"
    return dict(zip(SUMMARY_KEYS, map(int, m.groups())))


def query(db: Path | str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of `sql` (``?`` placeholders) from a SQLite file or a postgresql:// database."""
    if str(db).startswith("postgres"):
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(str(db), autocommit=True, row_factory=dict_row) as pg:
            return [dict(r) for r in pg.execute(sql.replace("?", "%s"), args)]  # type: ignore[arg-type]
    conn = sqlite3.connect(db, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def integrity(db: Path | str) -> str:
    if str(db).startswith("postgres"):
        return "ok" if query(db, "SELECT 1 AS one") == [{"one": 1}] else "no answer"
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def store_digest(db: Path) -> dict[str, Any]:
    """What a run produced, without ids and timestamps: to compare two stores."""
    gens = query(db, "SELECT key, text, model FROM generations ORDER BY key")
    judg = query(db, "SELECT unit_key, section, prompt_id, sample_index, judge, presentation_order, label_a, label_b, "
                     "gen_key_a, gen_key_b, verdict, winner, raw FROM judgments ORDER BY unit_key")
    links = query(db, "SELECT section, prompt_id, sample_index, contender, gen_key FROM run_generations "
                      "ORDER BY section, prompt_id, sample_index, contender")
    return {"generations": gens, "judgments": judg, "links": links}


def model_calls(server: LoopbackProvider) -> list[str]:
    """The model of every model request the server received (faulty ones included)."""
    out = []
    for r in server.requests:
        if r.method == "POST" and (r.path.endswith("/chat/completions") or r.path.endswith("/messages")
                                   or ":generateContent" in r.path):
            body = r.json()
            out.append(body.get("model") if isinstance(body, dict) and "model" in body
                       else r.path.split("/models/")[-1].split(":")[0])
    return out


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
