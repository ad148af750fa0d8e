"""One person's blind judging of a stored run: which comparisons, in what order, and their verdicts.

The comparisons are planned from what the run stored (its suite snapshot and
the answers linked to it), with `plan.judgment_units` and the person's
`human` judge identity. So a verdict given here has the same unit key and the
same seeded assignment as one given by a ``human`` judge with the same
``judge_name`` at the terminal, and it is stored through the engine's
`judgment_row` (which unblinds with `blinding.unblind`). The person's verdicts
are ordinary judgments of the judge ``NAME`` in the run: the report, the
export and the agreement statistics treat them like any other judge's.

Resuming needs no state of its own: the next comparison is the first of the
person's (seeded, shuffled) list that has no stored verdict.

With ``--sample N`` the person sees only the comparisons of N distinct prompts,
drawn uniformly at random, because the human-calibrated (PPI++) win rate
(`brie_bench.stats.ppi`) is unbiased only when the prompts people labelled are a
random subset. The draw is seeded by (run seed, name, N), so a reload or a new
server start shows the same prompts, and it is stored in the run's metadata
(`SAMPLES_KEY`) so a report can tell which prompts were sampled.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from brie_bench.api import JudgeContext, stable_hash
from brie_bench.blinding import blind
from brie_bench.engine import judgment_row
from brie_bench.errors import InputError
from brie_bench.plan import JudgmentUnit, judgment_units
from brie_bench.plugins.human_judge import HumanJudge, HumanJudgeOptions
from brie_bench.records import BlindedPair, JudgeResult, LabelVerdict
from brie_bench.store import Store
from brie_bench.suite import Prompt, Settings
from brie_bench.textsafe import normalise_prompt

#: What a person can answer, and how it is stored (skip: invalid with reason "skipped", as at the terminal).
CHOICES: dict[str, LabelVerdict] = {"A": "A", "B": "B", "tie": "tie", "skip": "invalid"}
#: The longest time a person may look at one comparison and still have it stored as their latency: past a
#: day the number says the tab was left open, not how long judging took (the verdict is kept, latency unknown).
MAX_LATENCY_S = 86_400.0
#: Where the run's metadata keeps each person's `--sample` draw: {name: SampleDraw as a dict}.
SAMPLES_KEY = "human_samples"


@dataclass(frozen=True)
class Progress:
    judged: int
    total: int

    @property
    def done(self) -> bool:
        return self.judged >= self.total


@dataclass(frozen=True)
class SampleDraw:
    """Which prompts a person was shown under ``--sample N``: what the report needs to know.

    `prompts` are normalised prompt texts (`normalise_prompt`, the report's clusters),
    sorted; `seed` is the `random.Random` seed (a hash); `available` is how many distinct prompts the run had to draw from.
    """

    n: int
    seed: str
    available: int
    prompts: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"n": self.n, "seed": self.seed, "available": self.available, "prompts": list(self.prompts)}


def check_sample(n: int | None) -> None:
    """`--sample` must ask for at least one prompt (checked before anything is opened)."""
    if n is not None and n < 1:
        raise InputError(f"must be at least 1 (got {n}): the number of prompts to show", field="--sample")


def draw_sample(units: list[JudgmentUnit], n: int, *, run_seed: int, name: str) -> SampleDraw:
    """N distinct prompts of `units`, uniformly at random, seeded by (run seed, name, N).

    Every prompt is equally likely whatever its number of comparisons, so the labelled
    prompts are the simple random sample PPI assumes. Asking for more prompts than the
    run has gives all of them (`available` says how many there were).
    """
    check_sample(n)
    prompts = sorted({normalise_prompt(u.prompt.text) for u in units})
    seed = stable_hash([run_seed, "web-sample", name, n])
    rng = random.Random(seed)
    chosen = prompts if n >= len(prompts) else rng.sample(prompts, n)
    return SampleDraw(n, seed, len(prompts), tuple(sorted(chosen)))


def human_judge(name: str) -> HumanJudge:
    """The person's judge: the built-in `human` judge's identity, so keys match the terminal judge."""
    try:
        options = HumanJudgeOptions(judge_name=name)
    except ValidationError as exc:
        reason = exc.errors()[0].get("msg", "invalid")
        raise InputError(f"{reason} (a name is 1-100 characters without control characters)",
                         field="--name") from None
    return HumanJudge(options, None, JudgeContext(name))


class JudgingSession:
    """A person (`name`) judging run `run_id` in the store at `db`.

    The store is opened once per thread (SQLite connections belong to their
    thread); every verdict is committed at once, so a closed tab or a killed
    server loses nothing.
    """

    def __init__(self, db: str, run_id: str | None, name: str, *, sample: int | None = None) -> None:
        check_sample(sample)
        self.db = db
        self.name = name
        self._local = threading.local()
        self.judge = human_judge(name)
        store = self.store
        run = store.run(run_id)
        self.run_id = run.id
        self.run_seed = run.seed
        self.suite_name = run.suite_name
        snapshot = store.suite_snapshot(run.id)
        self._check_name(snapshot, store)
        self.units = self._plan(run.metadata, snapshot, store)
        if not self.units:
            raise InputError(f"run {run.id} has no comparison with both answers stored; run the suite first",
                             path=db)
        #: The person's ``--sample`` draw (None: every comparison of the run).
        self.sample: SampleDraw | None = None
        if sample is not None:
            self.sample = draw_sample(self.units, sample, run_seed=self.run_seed, name=name)
            chosen = set(self.sample.prompts)
            self.units = [u for u in self.units if normalise_prompt(u.prompt.text) in chosen]
            self._store_sample(store, self.sample)
        self.by_key = {u.key: u for u in self.units}

    # -- the store, one connection per thread ------------------------------------------------
    @property
    def store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store(self.db)
        return store

    def open_for_web(self, busy_timeout_s: float) -> None:
        """Open this thread's connection for the page, waiting at most `busy_timeout_s` for a write lock.

        The page answers "busy, try again" after that instead of hanging for the
        store's usual 30 s while another program (a run, a second page) writes.
        """
        self.store.set_busy_timeout(busy_timeout_s)

    def close(self) -> None:
        store = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None

    # -- planning ----------------------------------------------------------------------------
    def _check_name(self, snapshot: dict[str, Any], store: Store) -> None:
        """The name must not be another kind of judge of this run, or verdicts would mix."""
        spec = (snapshot.get("judges") or {}).get(self.name)
        if spec is not None:
            options = spec.get("options") or {}
            same_person = spec.get("type") == "human" and options.get("judge_name", "anonymous") == self.name \
                and not options.get("scores")
            if not same_person:
                raise InputError(f"{self.name!r} is already a judge of run {self.run_id} "
                                 f"(type {spec.get('type')!r}); choose another name", field="--name")
        other = store.other_judge_type(self.run_id, self.name)
        if other is not None:
            raise InputError(f"{self.name!r} already judged run {self.run_id} as a {other!r} judge; "
                             "choose another name", field="--name")

    def _plan(self, metadata: dict[str, Any], snapshot: dict[str, Any], store: Store) -> list[JudgmentUnit]:
        """Every comparison of the run whose two answers are stored, shuffled for this person.

        The order is seeded by (run seed, name): the same on every visit, different
        per person, and it spreads the two orders of a pair apart.
        """
        contenders = list((snapshot.get("contenders") or {}).keys())
        baseline = metadata.get("baseline") or snapshot.get("baseline") or (contenders[0] if contenders else "")
        candidates = [c for c in contenders if c != baseline]
        links: dict[tuple[str, str, int], dict[str, str]] = {}
        for g in store.run_generations(self.run_id):
            links.setdefault((g["section"], g["prompt_id"], g["sample_index"]), {})[g["contender"]] = g["gen_key"]
        units: list[JudgmentUnit] = []
        for section in snapshot.get("sections") or []:
            settings = Settings.model_validate(section.get("settings") or {})
            for p in section.get("prompts") or []:
                prompt = Prompt(str(p["id"]), p["text"])
                for sample in range(settings.samples):
                    keys = links.get((section["name"], prompt.id, sample), {})
                    for candidate in candidates:
                        if baseline not in keys or candidate not in keys:
                            continue
                        units.extend(judgment_units(
                            section=section["name"], settings=settings, prompt=prompt, sample_index=sample,
                            pair=(baseline, candidate), gen_keys=(keys[baseline], keys[candidate]),
                            judge_name=self.name, judge=self.judge, run_seed=self.run_seed))
        stored_texts = store.stored_generation_keys(sorted({k for u in units for _, k in u.gen_keys}))
        units = [u for u in units if all(k in stored_texts for _, k in u.gen_keys)]
        rng = random.Random(stable_hash([self.run_seed, self.name]))
        rng.shuffle(units)
        return units

    def _store_sample(self, store: Store, draw: SampleDraw) -> None:
        """Keep the draw in the run's metadata under `SAMPLES_KEY`, written only when it changed.

        Read and written in one locked transaction (`Store.change_run_metadata`), so two
        people starting at once cannot overwrite each other's entry. A person who starts
        again with another N replaces their entry: it names the prompts of the latest draw.
        """
        record = draw.as_json()
        if (store.run_metadata(self.run_id).get(SAMPLES_KEY) or {}).get(self.name) == record:
            return  # a reload or a resumed session: nothing to write

        def add_entry(metadata: dict[str, Any]) -> dict[str, Any]:
            samples = metadata.get(SAMPLES_KEY)
            metadata[SAMPLES_KEY] = {**(samples if isinstance(samples, dict) else {}), self.name: record}
            return metadata

        store.change_run_metadata(self.run_id, add_entry)

    def sampled_prompts(self) -> int:
        """How many distinct prompts this person is shown (all of the run's without ``--sample``)."""
        return len({normalise_prompt(u.prompt.text) for u in self.units})

    # -- judging -----------------------------------------------------------------------------
    def judged_keys(self) -> set[str]:
        return self.store.stored_judgment_keys(self.run_id) & self.by_key.keys()

    def progress(self) -> Progress:
        return Progress(len(self.judged_keys()), len(self.units))

    def next_unit(self, prefer: str | None = None) -> JudgmentUnit | None:
        """The comparison to show: `prefer` (after an undo) if still open, else the first open one."""
        judged = self.judged_keys()
        if prefer in self.by_key and prefer not in judged:
            return self.by_key[prefer]
        return next((u for u in self.units if u.key not in judged), None)

    def pair(self, unit: JudgmentUnit) -> BlindedPair:
        """What the person sees: `blind` over the stored answers, label A on the left."""
        texts = self.store.generation_texts([k for _, k in unit.gen_keys])
        return blind(unit.prompt.text, {c: texts[k] for c, k in unit.gen_keys}, unit.assignment,
                     criteria=unit.criteria, system_prompt=unit.system_prompt)

    def record(self, unit_key: str, choice: str, *, seconds: float | None = None) -> bool:
        """Store the person's answer for one comparison; False if it was already stored (another tab).

        `seconds` (how long the person looked) is stored only when it is a finite
        number from 0 to `MAX_LATENCY_S`; otherwise the latency is unknown (None),
        never infinite or NaN, which strict JSON readers of an export reject.
        """
        if seconds is not None and not (math.isfinite(seconds) and 0 <= seconds <= MAX_LATENCY_S):
            seconds = None
        unit = self.by_key.get(unit_key)
        if unit is None:
            raise KeyError(unit_key)
        label = CHOICES[choice]
        if unit_key in self.store.stored_judgment_keys(self.run_id):
            return False
        result = JudgeResult(label, raw=f"{self.name}: {choice} (web)",
                             invalid_reason="skipped" if choice == "skip" else None)
        self.store.save_judgment(judgment_row(self.run_id, unit, result, judge_type=self.judge.name,
                                              judge_model=None, latency=seconds))
        return True

    def undo(self) -> str | None:
        """Take back this person's latest verdict in the run; the comparison's key, or None."""
        return self.store.delete_latest_judgment(self.run_id, list(self.by_key))

    def tally(self) -> dict[str, int]:
        """This person's verdicts by label (no contender names: the page stays blind)."""
        counts = {"decided": 0, "tie": 0, "skipped": 0}
        keys = self.by_key.keys()
        for row in self.store.judgments(self.run_id):
            if row.unit_key not in keys:
                continue
            verdict = row.verdict
            counts["decided" if verdict in ("A", "B") else "tie" if verdict == "tie" else "skipped"] += 1
        return counts
