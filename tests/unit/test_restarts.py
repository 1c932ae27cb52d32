"""Restarting a crashed part of the local stack: backoff, window, giving up."""

from __future__ import annotations

import pytest

from oasis_keda.runtime.errors import PartFailedError
from oasis_keda.runtime.restarts import RestartPolicy, Restarts


def test_backoff_doubles_up_to_the_cap() -> None:
    restarts = Restarts(RestartPolicy(max_restarts=10, base_backoff_s=1, max_backoff_s=5))
    delays = [restarts.next_delay("scaler", now=float(t)) for t in range(6)]
    assert delays == [1, 2, 4, 5, 5, 5]
    assert restarts.count("scaler") == 6
    assert restarts.next_delay("api", now=6.0) == 1  # each part has its own history


def test_gives_up_after_max_restarts_in_the_window() -> None:
    restarts = Restarts(RestartPolicy(max_restarts=2, window_s=60))
    restarts.next_delay("controller", now=0.0)
    restarts.next_delay("controller", now=10.0)
    with pytest.raises(
        PartFailedError,
        match="controller exited 3 time.s. within 60 s, more than the 2 restart.s. allowed",
    ):
        restarts.next_delay("controller", now=20.0)


def test_old_exits_leave_the_window() -> None:
    restarts = Restarts(RestartPolicy(max_restarts=1, window_s=60))
    assert restarts.next_delay("scaler", now=0.0) == 1
    assert restarts.next_delay("scaler", now=100.0) == 1  # the first exit is forgotten


def test_policy_checked() -> None:
    with pytest.raises(ValueError, match="max_restarts"):
        RestartPolicy(max_restarts=-1)
