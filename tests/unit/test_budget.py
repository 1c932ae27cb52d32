"""The global worker budget: busy first, then priority, then max-min fair, deterministic.

Covers: no limit or enough budget -> desired unchanged; busy workers granted first (even
beyond the limit); higher priority served first; max-min fairness within a priority and
the remainder in model-id order; unknown priority last; input order irrelevant.
"""

from __future__ import annotations

import itertools

import pytest

from scaler.budget import Demand, allocate, fair_share


def d(model_id: str, desired: int, busy: int = 0, priority: int = 0) -> Demand:
    return Demand(model_id=model_id, desired=desired, busy=busy, priority=priority)


CASES = [
    ("no limit", [d("a", 5), d("b", 7)], None, {"a": 5, "b": 7}),
    ("under the limit", [d("a", 5), d("b", 3)], 10, {"a": 5, "b": 3}),
    ("exactly the limit", [d("a", 5), d("b", 5)], 10, {"a": 5, "b": 5}),
    ("equal priority fair split", [d("a", 10), d("b", 10)], 10, {"a": 5, "b": 5}),
    ("max-min: small demand met, rest to big", [d("a", 2), d("b", 10), d("c", 10)], 10,
     {"a": 2, "b": 4, "c": 4}),
    ("remainder in id order", [d("c", 5), d("a", 5), d("b", 5)], 7, {"a": 3, "b": 2, "c": 2}),
    ("priority first", [d("lo", 5, priority=3), d("hi", 5, priority=8)], 6,
     {"hi": 5, "lo": 1}),
    ("priority beats fairness", [d("lo", 10, priority=1), d("hi", 10, priority=10)], 10,
     {"hi": 10, "lo": 0}),
    ("unknown priority last", [d("none", 4), d("p1", 4, priority=1)], 5, {"p1": 4, "none": 1}),
    ("busy first", [d("busy", 4, busy=3, priority=1), d("hi", 10, priority=10)], 5,
     {"busy": 3, "hi": 2}),
    ("busy kept beyond the limit", [d("a", 3, busy=3), d("b", 4, busy=4), d("c", 5)], 5,
     {"a": 3, "b": 4, "c": 0}),
    ("limit zero keeps busy only", [d("a", 2, busy=1), d("b", 3)], 0, {"a": 1, "b": 0}),
    ("zero demand untouched", [d("a", 0), d("b", 8)], 4, {"a": 0, "b": 4}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("demands", "limit", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_allocate(demands: list[Demand], limit: int | None, expected: dict[str, int]) -> None:
    assert allocate(demands, limit) == expected


def test_never_above_desired_and_within_limit() -> None:
    demands = [d(f"m{i}", desired=i % 7, busy=i % 3 if i % 7 >= i % 3 else 0, priority=i % 4)
               for i in range(30)]  # fmt: skip
    for limit in range(0, 80, 5):
        granted = allocate(demands, limit)
        busy_total = sum(min(x.busy, x.desired) for x in demands)
        assert sum(granted.values()) <= max(limit, busy_total)
        for x in demands:
            assert min(x.busy, x.desired) <= granted[x.model_id] <= x.desired


def test_deterministic_whatever_the_input_order() -> None:
    demands = [d("a", 3, priority=2), d("b", 3, priority=2), d("c", 3, priority=2), d("z", 2)]
    results = {tuple(sorted(allocate(p, 5).items())) for p in itertools.permutations(demands)}
    assert len(results) == 1


def test_fair_share_water_filling() -> None:
    assert fair_share({"a": 1, "b": 5, "c": 5}, 9) == {"a": 1, "b": 4, "c": 4}
    assert fair_share({"a": 1, "b": 1}, 5) == {"a": 1, "b": 1}
    assert fair_share({}, 5) == {}


def test_negative_demand_refused() -> None:
    with pytest.raises(ValueError, match="x"):
        Demand(model_id="x", desired=-1)
