"""Single-flight coalescing (scaler.singleflight), on a real event loop with no I/O.

Covers: concurrent non-fresh callers share the read in flight; fresh callers never get a
read that started before their call, and share the next one; errors reach every caller.
"""

from __future__ import annotations

import asyncio

import pytest

from scaler.singleflight import SingleFlight


class Source:
    def __init__(self) -> None:
        self.started = 0
        self.gate = asyncio.Event()

    async def read(self) -> int:
        self.started += 1
        number = self.started
        await self.gate.wait()
        return number


async def test_non_fresh_callers_join_the_read_in_flight() -> None:
    source = Source()
    flight = SingleFlight(source.read)
    calls = [asyncio.create_task(flight(fresh=False)) for _ in range(10)]
    await asyncio.sleep(0)
    source.gate.set()
    assert await asyncio.gather(*calls) == [1] * 10
    assert source.started == 1


async def test_fresh_callers_wait_for_the_next_read() -> None:
    source = Source()
    flight = SingleFlight(source.read)
    first = asyncio.create_task(flight())
    await asyncio.sleep(0)
    later = [asyncio.create_task(flight(fresh=True)) for _ in range(5)]
    await asyncio.sleep(0)
    source.gate.set()
    assert await first == 1
    assert await asyncio.gather(*later) == [2] * 5
    assert source.started == 2


async def test_errors_reach_every_caller() -> None:
    async def fail() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("broker down")

    flight = SingleFlight(fail)
    results = await asyncio.gather(*(flight() for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        await flight()
