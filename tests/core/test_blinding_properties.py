"""Property tests for the blinding contract (DESIGN.md), clause by clause.

Each property is written as a `check_*` function over an unblinding function,
so the same checks run against the real `unblind` (they must pass) and
against deliberately broken mutants (they must fail): a test suite that
cannot catch the original tool's 56%-inversion bug is no guard at all.
"""

from __future__ import annotations

import json
import math
import random
import string
from pathlib import Path
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import brie_bench.engine
from brie_bench.blinding import Assignment, assignment_for_order, blind, draw_assignment, unblind
from brie_bench.stats import TIE_OUTCOME, combine_orders, outcome_of
from helpers import rows, run_suite, scripted_suite, write_yaml

names = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=12).filter(
    lambda s: s != "tie")
pairs = st.tuples(names, names).filter(lambda p: p[0] != p[1])
labels = st.sampled_from(["A", "B"])
keys = st.text(min_size=1, max_size=40)
seeds = st.integers(min_value=0, max_value=2**63 - 1)

Unblind = Callable[[str, Assignment], object]


# -- mutants of unblind: each is a bug a real tool has shipped or could ship -------------------
def mutant_fixed_mapping(verdict: str, assignment: Assignment) -> object:
    """The original bug's shape: "A" always means the first contender of the pair, ignoring order."""
    first, second = sorted((assignment.a, assignment.b))
    return {"A": first, "B": second}.get(verdict, "tie" if verdict == "tie" else None)


def mutant_swap_when_flipped(verdict: str, assignment: Assignment) -> object:
    """Swaps the mapping for one order only (when the alphabetically later contender is A)."""
    flipped = assignment.a > assignment.b
    if verdict in ("A", "B") and flipped:
        verdict = "B" if verdict == "A" else "A"
    return unblind(verdict, assignment)  # type: ignore[arg-type]


def mutant_invalid_is_tie(verdict: str, assignment: Assignment) -> object:
    return "tie" if verdict == "invalid" else unblind(verdict, assignment)  # type: ignore[arg-type]


MUTANTS = [mutant_fixed_mapping, mutant_swap_when_flipped, mutant_invalid_is_tie]


# -- the checks ------------------------------------------------------------------------------
def check_inverts_assignment(fn: Unblind, pair: tuple[str, str], label: str) -> None:
    for assignment in (Assignment(*pair), Assignment(pair[1], pair[0])):
        winner = fn(label, assignment)
        assert winner == assignment.contender(label)  # type: ignore[arg-type]
        assert assignment.label_of(winner) == label  # type: ignore[arg-type]
        assert fn("tie", assignment) == "tie"
        assert fn("invalid", assignment) is None


def check_always_a_judge(fn: Unblind, seed: int, pair: tuple[str, str], n: int = 400) -> None:
    """A judge that always answers "A": no net win in expectation under random orders,
    exactly zero decisive net wins under `orders: both`."""
    baseline, candidate = pair
    wins = 0
    both_net = 0
    for i in range(n):
        base = draw_assignment(seed, f"unit-{i}", (baseline, candidate))
        if fn("A", base) == candidate:
            wins += 1
        for order in (0, 1):
            w = fn("A", assignment_for_order(base, order))
            both_net += (w == candidate) - (w == baseline)
        both = [outcome_of(fn("A", a), baseline, candidate) for a in (base, base.flipped())]
        assert combine_orders(*both) == TIE_OUTCOME
    # random orders: wins ~ Binomial(n, 1/2); 5 standard deviations is a loose, never-flaky bound
    assert abs(wins - n / 2) <= 5 * math.sqrt(n) / 2
    assert both_net == 0


def check_recognising_judge(fn: Unblind, seed: int, pair: tuple[str, str], n: int = 50) -> None:
    """A judge that recognises the candidate's text always makes the candidate win."""
    baseline, candidate = pair
    texts = {baseline: "plain answer", candidate: "answer with *marker*"}
    for i in range(n):
        for order in (0, 1):
            assignment = assignment_for_order(draw_assignment(seed, f"k{i}", pair), order)
            shown = blind("prompt", texts, assignment, criteria=("depth",))
            label = "A" if "*" in shown.answer_a else "B"
            assert fn(label, assignment) == candidate


# -- properties against the real unblind -------------------------------------------------------
@given(pairs, labels)
def test_unblind_inverts_assignment(pair, label):
    check_inverts_assignment(unblind, pair, label)


@given(seeds, pairs)
@settings(max_examples=30, deadline=None)
def test_always_a_judge_gives_no_net_win(seed, pair):
    check_always_a_judge(unblind, seed, pair)


@given(seeds, pairs)
@settings(max_examples=50, deadline=None)
def test_recognising_judge_always_picks_its_contender(seed, pair):
    check_recognising_judge(unblind, seed, pair)


@given(seeds, keys, pairs)
def test_assignment_is_a_pure_function_of_seed_and_key(seed, key, pair):
    first = draw_assignment(seed, key, pair)
    assert draw_assignment(seed, key, pair) == first
    assert draw_assignment(seed, key, (pair[1], pair[0])) == first  # caller's order does not matter
    assert {first.a, first.b} == set(pair)


@given(seeds, pairs)
@settings(max_examples=30, deadline=None)
def test_both_labels_are_drawn_for_each_contender(seed, pair):
    draws = [draw_assignment(seed, f"u{i}", pair).a for i in range(200)]
    share = draws.count(pair[0]) / len(draws)
    assert 0.3 < share < 0.7


@given(st.text(), st.text(), st.text(), pairs)
def test_blinded_pair_holds_only_prompt_and_answers(prompt, text_x, text_y, pair):
    assignment = Assignment(*pair)
    shown = blind(prompt, {pair[0]: text_x, pair[1]: text_y}, assignment, criteria=("depth",))
    assert (shown.answer_a, shown.answer_b) == (text_x, text_y)
    assert set(vars(shown)) == {"prompt", "answer_a", "answer_b", "criteria", "system_prompt"}


def test_orders_both_uses_mirrored_assignments():
    base = draw_assignment(3, "k", ("x", "y"))
    assert assignment_for_order(base, 1) == Assignment(base.b, base.a)


# -- the same checks catch every mutant --------------------------------------------------------
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.__name__)
def test_checks_catch_mutated_unblinding(mutant):
    rng = random.Random(0)
    caught = False
    for _ in range(40):
        pair = ("baseline", "brie") if rng.random() < 0.5 else ("zeta", "alpha")
        seed = rng.randrange(2**32)
        for check in (lambda pair=pair: check_inverts_assignment(mutant, pair, rng.choice("AB")),
                      lambda seed=seed, pair=pair: check_always_a_judge(mutant, seed, pair),
                      lambda seed=seed, pair=pair: check_recognising_judge(mutant, seed, pair)):
            try:
                check()
            except AssertionError:
                caught = True
    assert caught, f"{mutant.__name__} was not detected by any blinding property"


# -- end to end through the engine and store ---------------------------------------------------
def _run(tmp_path: Path, judges: dict, orders: str, seed: int = 5, n_prompts: int = 30) -> list:
    data = scripted_suite(judges=judges, seed=seed, orders=orders, sections=[
        {"name": "s", "prompts": [f"Question number {i} about time" for i in range(n_prompts)]}])
    path = write_yaml(tmp_path / "suite.yaml", data)
    db = tmp_path / "bench.db"
    assert run_suite(path, db) == 0
    return rows(db, "SELECT * FROM judgments")


def test_engine_always_a_judge_under_both_orders_is_exactly_balanced(tmp_path):
    judged = _run(tmp_path, {"biased": {"type": "fixed", "options": {"answer": "A"}}}, "both")
    wins = sum(r["winner"] == "brie" for r in judged)
    losses = sum(r["winner"] == "baseline" for r in judged)
    assert len(judged) == 60 and wins == losses == 30


def test_engine_always_a_judge_under_random_orders_has_no_systematic_winner(tmp_path):
    judged = _run(tmp_path, {"biased": {"type": "fixed", "options": {"answer": "A"}}}, "random", n_prompts=40)
    wins = sum(r["winner"] == "brie" for r in judged)
    assert abs(wins - 20) <= 5 * math.sqrt(40) / 2
    assert {r["label_a"] for r in judged} == {"baseline", "brie"}  # both contenders carried label A


def test_engine_recognising_judge_always_picks_the_candidate(tmp_path):
    judged = _run(tmp_path, {"m": {"type": "marker"}}, "both")
    assert judged and all(r["winner"] == "brie" for r in judged)


def test_engine_with_mutated_unblinding_is_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(brie_bench.engine, "unblind", mutant_swap_when_flipped)
    judged = _run(tmp_path, {"m": {"type": "marker"}}, "both")
    assert not all(r["winner"] == "brie" for r in judged)


distinct_names = st.text(alphabet=string.ascii_lowercase, min_size=4, max_size=10).map(lambda s: "zq" + s)


@given(st.sampled_from(["Qwen/Qwen2.5-3B-Instruct", "/models/adapters/brie-v2-3b"]), distinct_names)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_judge_never_sees_contender_names_or_adapter_paths(tmp_path, model, candidate):
    record = tmp_path / f"pairs-{abs(hash((model, candidate)))}.jsonl"
    data = scripted_suite(
        contenders={"baseline": {"backend": "scripted", "model": model},
                    candidate: {"backend": "scripted", "model": model,
                                "options": {"marker": "*", "style": f"tuned-{len(candidate)}"}}},
        judges={"m": {"type": "marker", "options": {"record": str(record)}}},
        sections=[{"name": "s", "prompts": ["Describe dwelling.", "What is a clearing?"], "orders": "both"}])
    path = write_yaml(tmp_path / "suite.yaml", data)
    assert run_suite(path, tmp_path / f"{abs(hash((model, candidate)))}.db") == 0
    seen = record.read_text(encoding="utf-8")
    assert len(seen.splitlines()) == 4
    for secret in (candidate, model, "baseline"):
        for line in seen.splitlines():
            shown = json.loads(line)
            assert all(secret not in str(v) for v in shown.values()), secret
