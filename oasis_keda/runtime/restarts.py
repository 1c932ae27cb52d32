"""When to restart a part of the local stack that exited, and when to give up. Pure.

The scaler, the controller and the API are restarted with exponential backoff (1 s, 2 s,
4 s, ... up to 30 s), as a kubelet restarts a crashed container. A part that exits more
than ``max_restarts`` times within ``window_s`` is failing, not crashing now and then:
the supervisor then stops the stack and ``up`` exits non-zero with the reason.
"""

from __future__ import annotations

import dataclasses
from collections import deque

from oasis_keda.runtime.errors import PartFailedError


@dataclasses.dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    max_restarts: int = 5
    """Restarts allowed within ``window_s``; one more exit gives up."""
    window_s: float = 300.0
    base_backoff_s: float = 1.0
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts}")
        if self.window_s <= 0 or self.base_backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("window_s must be > 0 and the backoffs >= 0")


class Restarts:
    """The restart history of the stack's parts."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._history: dict[str, deque[float]] = {}

    def count(self, part: str) -> int:
        return len(self._history.get(part, ()))

    def next_delay(self, part: str, now: float) -> float:
        """Seconds to wait before restarting ``part``, which exited at ``now``.

        Raises PartFailedError when it already had ``max_restarts`` restarts in the window.
        """
        history = self._history.setdefault(part, deque())
        while history and now - history[0] > self.policy.window_s:
            history.popleft()
        if len(history) >= self.policy.max_restarts:
            raise PartFailedError(
                f"{part} exited {len(history) + 1} time(s) within {self.policy.window_s:.0f} s, "
                f"more than the {self.policy.max_restarts} restart(s) allowed; giving up"
            )
        delay = min(self.policy.base_backoff_s * 2.0 ** len(history), self.policy.max_backoff_s)
        history.append(now)
        return delay
