"""The global worker budget: fair shares, and grants that never push live workers over it.

Covers the shares (priority first, max-min fair, remainder to the oldest waiting work,
never by model id, input order irrelevant), the grants (cuts at once, growth only from
free capacity, draining workers keep theirs, pending raises), and two properties checked
over generated cases: the capacity held after a grant is never over the limit when it was
not before, and a model whose share is at least 1 ends up granted it once the others have
drained to their shares.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaler.budget import Demand, fair_shares, grant, pending_raise


def d(model_id: str, wanted: int, *, priority: int = 0, since: int | None = None,
      live: int = 0, granted: int = 0, raised: int = 0) -> Demand:  # fmt: skip
    return Demand(model_id=model_id, wanted=wanted, priority=priority, waiting_since_ms=since,
                  live=live, granted=granted, raised=raised)  # fmt: skip


SHARES = [
    ("under the limit", [d("a", 5), d("b", 3)], 10, {"a": 5, "b": 3}),
    ("equal priority fair split", [d("a", 10), d("b", 10)], 10, {"a": 5, "b": 5}),
    ("max-min: small demand met, rest to big", [d("a", 2), d("b", 10), d("c", 10)], 10,
     {"a": 2, "b": 4, "c": 4}),
    ("remainder to the oldest waiting, not the id",
     [d("a", 5, since=300), d("b", 5, since=100), d("c", 5, since=200)], 7,
     {"b": 3, "c": 2, "a": 2}),
    ("known waiting time before unknown", [d("a", 5), d("z", 5, since=9)], 3, {"z": 2, "a": 1}),
    ("priority first", [d("lo", 5, priority=3), d("hi", 5, priority=8)], 6, {"hi": 5, "lo": 1}),
    ("priority beats fairness", [d("lo", 10, priority=1), d("hi", 10, priority=10)], 10,
     {"hi": 10, "lo": 0}),
    ("unknown priority last", [d("none", 4), d("p1", 4, priority=1)], 5, {"p1": 4, "none": 1}),
    ("zero demand gets nothing", [d("a", 0), d("b", 8)], 4, {"a": 0, "b": 4}),
    ("limit zero", [d("a", 2)], 0, {"a": 0}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("demands", "limit", "expected"), [c[1:] for c in SHARES], ids=[c[0] for c in SHARES]
)
def test_fair_shares(demands: list[Demand], limit: int, expected: dict[str, int]) -> None:
    assert fair_shares(demands, limit) == expected


def test_shares_do_not_depend_on_input_order() -> None:
    demands = [d("a", 3, since=5), d("b", 3, since=4), d("c", 3, since=6), d("z", 2)]
    results = {tuple(sorted(fair_shares(p, 5).items())) for p in itertools.permutations(demands)}
    assert results == {(("a", 1), ("b", 2), ("c", 1), ("z", 1))}


def test_grants_start_from_free_capacity() -> None:
    # Nothing held yet: every share is granted at once.
    out = grant([d("m1", 3, since=1), d("m2", 2, since=2), d("m3", 1, since=3)], 4)
    assert out.shares == {"m1": 2, "m2": 1, "m3": 1}
    assert out.granted == out.shares
    assert out.raised == {"m1": 2, "m2": 1, "m3": 1}


def test_a_cut_is_immediate_and_its_draining_workers_keep_their_capacity() -> None:
    # m1 held 3 (all live, one busy beyond its new share); m3 arrives with work.
    out = grant([d("m1", 3, since=1, live=3, granted=3), d("m3", 1, since=5)], 3)
    assert out.shares == {"m1": 2, "m3": 1}
    assert out.granted == {"m1": 2, "m3": 0}  # m3 waits: m1's third worker is still live
    # m1's third worker has drained: now m3 gets its share.
    out = grant([d("m1", 3, since=1, live=2, granted=2), d("m3", 1, since=5)], 3)
    assert out.granted == {"m1": 2, "m3": 1}


def test_busy_workers_beyond_the_new_share_are_not_granted() -> None:
    # 3 busy on m1 (wanted keeps the busy floor), higher priority m2 arrives: m1's share
    # drops below its busy workers; they drain after their sub-tasks, m2 grows as they do.
    out = grant([d("m1", 3, priority=1, live=3, granted=3), d("m2", 3, priority=9)], 3)
    assert out.shares == {"m1": 0, "m2": 3}
    assert out.granted == {"m1": 0, "m2": 0}
    out = grant([d("m1", 3, priority=1, live=1, granted=0), d("m2", 3, priority=9)], 3)
    assert out.granted == {"m1": 0, "m2": 2}


def test_a_pending_raise_holds_capacity_until_its_workers_are_live() -> None:
    # m1 was raised to 3 but only 1 worker is live yet; its share is now 2.
    out = grant([d("m1", 3, since=1, live=1, granted=3, raised=3), d("m2", 2, since=2)], 4)
    assert out.granted == {"m1": 2, "m2": 1}  # 4 - 3 held by m1 = 1 free
    assert pending_raise("3:1000", live=1, now_ms=999) == 3
    assert pending_raise("3:1000", live=3, now_ms=999) == 0  # its workers are live
    assert pending_raise("3:1000", live=1, now_ms=1000) == 0  # start allowance over
    assert pending_raise("junk", live=0, now_ms=0) == 0


def test_answers_are_stable_when_nothing_changes() -> None:
    demands = [d("m1", 3, since=1), d("m2", 2, since=2), d("m3", 1, since=3)]
    first = grant(demands, 4)
    again = grant([
        d(x.model_id, x.wanted, since=x.waiting_since_ms, live=first.granted[x.model_id],
          granted=first.granted[x.model_id]) for x in demands
    ], 4)  # fmt: skip
    assert again.granted == first.granted
    assert again.raised == {}


def test_negative_counts_refused() -> None:
    with pytest.raises(ValueError, match="x"):
        Demand(model_id="x", wanted=-1)
    with pytest.raises(ValueError, match="limit"):
        fair_shares([], -1)


demand_lists = st.lists(
    st.tuples(
        st.integers(0, 6),  # wanted
        st.integers(0, 3),  # priority
        st.integers(0, 5),  # live
        st.integers(0, 5),  # granted
        st.integers(0, 5),  # raised
        st.one_of(st.none(), st.integers(0, 9)),  # waiting since
    ),
    min_size=1,
    max_size=6,
)


def _demands(raw: list[tuple[int, int, int, int, int, int | None]]) -> list[Demand]:
    return [
        d(f"m{i}", w, priority=p, live=lv, granted=g, raised=r, since=s)
        for i, (w, p, lv, g, r, s) in enumerate(raw)
    ]


@settings(max_examples=300, deadline=None)
@given(demand_lists, st.integers(0, 12))
def test_the_ceiling_holds(
    raw: list[tuple[int, int, int, int, int, int | None]], limit: int
) -> None:
    demands = _demands(raw)
    before = sum(x.held for x in demands)
    out = grant(demands, limit)
    after = sum(max(x.live, out.granted[x.model_id], x.raised) for x in demands)
    # What the orchestrators may start: each model up to its grant, beside its live workers.
    assert after <= max(before, limit)
    for x in demands:
        assert out.granted[x.model_id] <= out.shares[x.model_id]
        if out.granted[x.model_id] > x.granted:  # grew: only from free capacity
            assert x.model_id in out.raised


@settings(max_examples=300, deadline=None)
@given(demand_lists, st.integers(0, 12))
def test_shares_are_reached_once_the_others_drain(
    raw: list[tuple[int, int, int, int, int, int | None]], limit: int
) -> None:
    demands = _demands(raw)
    out = grant(demands, limit)
    # Every worker above its model's share drains, every raise's workers are live.
    settled = [
        d(x.model_id, x.wanted, priority=x.priority, since=x.waiting_since_ms,
          live=out.granted[x.model_id], granted=out.granted[x.model_id])
        for x in demands
    ]  # fmt: skip
    final = grant(settled, limit)
    assert final.granted == final.shares
    assert sum(final.granted.values()) <= limit
