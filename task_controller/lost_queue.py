"""A lost queue noticed and healed: sub-tasks the records say are queued or running, found
neither in the broker nor on a worker's lease, are sent again.

Redis holds the queued messages. A restart without persistence loses them all, a SIGKILL
under ``appendfsync everysec`` the last second of them; nothing else would notice, and the
analysis would stay in progress for ever. Each janitor pass (:meth:`LostQueue.sweep`):

* takes the sub-tasks of the runs in progress that are QUEUED or STARTED since longer than
  the grace period, and keeps those whose task id is on no live task lease, in no
  ``unacked`` message and in no priority list of their queue (one Lua scan in Redis);
* acts only on a sub-task found nowhere on every pass for the grace period (a message
  between a worker's fetch and its lease is never taken for lost, nor a running chunk
  whose worker's heartbeat writes its lease again after Redis lost it);
* sends the stage again from the earliest lost step, with the recorded task ids: from that
  step if it comes before the chunks (what follows it travels in its message, so was lost
  with it), else the chord of every chunk and the steps after it (the chord's count and
  the chunks' results were in Redis too; a chunk run again replaces its own output);
* records it as a new attempt (``retry_count`` + 1, the reason added to ``retry_log``);
  past :data:`LOST_QUEUE_RETRIES` the stage ends in its error status with a message saying
  that its queue was lost.

An analysis still ``*_QUEUED`` whose main task is nowhere (the controller's queue was lost
too) gets its main task again, with the options its request recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import defaultdict
from typing import Any, cast

import redis
from sqlalchemy import func, select

from oasis_keda.core import keys
from oasis_keda.core.stages import spec_for, stage_of_status
from oasis_keda.core.statuses import IN_PROGRESS, SubTaskStatus
from oasis_keda.core.store import Analysis, SubTask, utcnow
from task_controller import records
from task_controller.canvas import build_canvas
from task_controller.dispatch import DISPATCH_TASK, Dispatcher, main_task_id
from worker.app import broker_priority

logger = logging.getLogger(__name__)

#: How many times a lost sub-task is queued again before its stage fails.
LOST_QUEUE_RETRIES = 3
UNACKED = "unacked"

# KEYS: the priority lists of one queue. ARGV: task ids. Returns the ids found in a message.
_FIND_LUA = """
local wanted = {}
for _, id in ipairs(ARGV) do wanted[id] = true end
local found = {}
for _, key in ipairs(KEYS) do
  for _, msg in ipairs(redis.call('LRANGE', key, 0, -1)) do
    local id = string.match(msg, '"id": ?"([^"]+)"')
    if id and wanted[id] then found[#found + 1] = id; wanted[id] = nil end
  end
end
return found
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class LostQueue:
    """Finds and re-sends lost sub-tasks and main tasks; one per controller process."""

    def __init__(self, dispatcher: Dispatcher, *, grace_s: float) -> None:
        self.dispatcher = dispatcher
        self.client: redis.Redis = dispatcher.client
        self.grace_s = grace_s
        self._find = self.client.register_script(_FIND_LUA)
        #: task id -> when it was first found nowhere (monotonic seconds)
        self._suspects: dict[str, float] = {}

    # -- where a task id can be -----------------------------------------------------------

    def _leased(self, queue: str) -> set[str]:
        seconds, micros = self.client.time()
        now_ms = seconds * 1000 + micros // 1000
        members = self.client.zrangebyscore(keys.leases_tasks(queue), now_ms, "+inf")
        return {_text(m).rsplit("|", 1)[-1] for m in cast(list[bytes], members)}

    def _unacked(self) -> set[str]:
        ids = set()
        for raw in cast(list[bytes], self.client.hvals(UNACKED)):
            try:
                ids.add(str(json.loads(raw)[0]["headers"]["id"]))
            except (ValueError, KeyError, TypeError, IndexError):
                continue
        return ids

    def _nowhere(self, queue: str, task_ids: set[str], unacked: set[str]) -> set[str]:
        missing = task_ids - self._leased(queue) - unacked
        if not missing:
            return set()
        found = self._find(keys=keys.queue_lists(queue), args=sorted(missing))
        return missing - {_text(f) for f in cast(list[bytes], found)}

    # -- the pass ---------------------------------------------------------------------------

    def sweep(self) -> int:
        """One pass; returns how many stages were sent again or failed."""
        cutoff = utcnow() - dt.timedelta(seconds=self.grace_s)
        with self.dispatcher.sessions() as session:
            rows = session.execute(
                select(SubTask.task_id, SubTask.queue_name, SubTask.analysis_id)
                .join(Analysis, Analysis.id == SubTask.analysis_id)
                .where(
                    Analysis.status.in_(sorted(IN_PROGRESS)),
                    SubTask.run_number == Analysis.run_number,
                    SubTask.status.in_([SubTaskStatus.QUEUED.value, SubTaskStatus.STARTED.value]),
                    SubTask.task_id.is_not(None),
                    func.coalesce(SubTask.start_time, SubTask.queue_time, SubTask.pending_time)
                    < cutoff,
                )
            ).all()
            waiting = self._waiting_main_tasks(session, cutoff)
        by_queue: dict[str, set[str]] = defaultdict(set)
        analysis_of: dict[str, int] = {}
        for task_id, queue, analysis_id in rows:
            if task_id is None:
                continue
            by_queue[queue].add(task_id)
            analysis_of[task_id] = analysis_id
        unacked = self._unacked() if by_queue or waiting else set()
        lost: set[str] = set()
        for queue, task_ids in by_queue.items():
            lost |= self._nowhere(queue, task_ids, unacked)
        lost_main = (
            self._nowhere(keys.CONTROLLER_QUEUE, set(waiting), unacked) if waiting else set()
        )
        lost_main = {t for t in lost_main if waiting[t][1] < cutoff}
        # only what has been missing for the grace period, on every pass since: a live
        # worker's heartbeat writes its leases again within one lease TTL
        now = time.monotonic()
        self._suspects = {t: self._suspects.get(t, now) for t in lost | lost_main}
        confirmed = {
            t for t, since in self._suspects.items() if since < now and now - since >= self.grace_s
        }
        for task_id in confirmed:
            del self._suspects[task_id]
        acted = 0
        for analysis_id in sorted({analysis_of[t] for t in confirmed if t in analysis_of}):
            acted += self._heal(analysis_id, cutoff, confirmed)
        for task_id in sorted(confirmed & set(waiting)):
            acted += self._resend_main_task(waiting[task_id][0])
        return acted

    def _waiting_main_tasks(
        self, session: Any, cutoff: dt.datetime
    ) -> dict[str, tuple[int, dt.datetime]]:
        """``main:<id>:<run>`` -> (analysis id, queued at) of each analysis still queued with
        no sub-task sent yet: its main task should be in the controller's queue or held by a
        controller. Main tasks carry their own ids, so they are looked for by analysis."""
        found: dict[str, tuple[int, dt.datetime]] = {}
        for analysis in records.active_analyses(session):
            spec = stage_of_status(analysis.status)
            if spec is None or analysis.status != spec.queued:
                continue
            subs = records.subtasks(session, analysis.id, analysis.run_number)
            if any(s.status != SubTaskStatus.PENDING.value for s in subs):
                continue
            started = analysis.task_started or utcnow()
            if started < cutoff:
                found[main_task_id(analysis.id, analysis.run_number)] = (analysis.id, started)
        return found

    def _request(self, analysis_id: int, run_number: int) -> dict[str, Any] | None:
        root = self.dispatcher.storage.run_dirs(analysis_id, run_number).root
        return records.read_run_file(root, records.REQUEST_FILE)

    # -- healing ----------------------------------------------------------------------------

    def _heal(self, analysis_id: int, cutoff: dt.datetime, lost: set[str]) -> int:
        d = self.dispatcher
        with d.sessions.begin() as session:
            analysis = records.get_analysis(session, analysis_id)
            if analysis.status not in IN_PROGRESS:
                return 0
            subs = records.subtasks(session, analysis_id, analysis.run_number)
            gone = [s for s in subs if s.task_id in lost]
            if not gone:
                return 0
            spec = spec_for(subs[0].stage)
            run_root = d.storage.run_dirs(analysis_id, analysis.run_number).root
            job = records.read_run_file(run_root, records.JOB_FILE)
            first = gone[0]
            if first.retry_count >= LOST_QUEUE_RETRIES or job is None:
                why = (
                    f"queued again {first.retry_count} times"
                    if job is not None
                    else "its job file is missing, so it cannot be sent again"
                )
                message = (
                    f"the queue was lost: sub-task {first.slug} (task {first.task_id}) was found "
                    f"neither in the broker nor on any worker's lease; {why}, giving up"
                )
                failed_id = first.id
            else:
                failed_id = None
                before = [s.slug for s in spec.before]
                start = before.index(first.slug) if first.slug in before else len(before)
                for sub in gone:
                    sub.status = SubTaskStatus.QUEUED.value
                    sub.queue_time = utcnow()
                    sub.retry_count += 1
                    sub.retry_log = (sub.retry_log or "") + (
                        f"retry {sub.retry_count}: the queue was lost (found neither in the "
                        f"broker nor on a worker's lease); queued again\n"
                    )
                planned = records.planned_from_rows(spec, subs)
                canvas = build_canvas(
                    d.app,
                    spec,
                    cast(Any, job),
                    planned,
                    [s.id for s in subs],
                    priority=analysis.priority,
                    start=start,
                )
                resent = [s.slug for s in subs[start:]]
        if failed_id is not None:
            logger.error("analysis %s: %s", analysis_id, message)
            revoke = d.app.oasis.recorder.fail(failed_id, error_log=message + "\n", output_log="")
            if revoke:
                d.app.control.revoke(revoke, terminate=True)
            return 1
        canvas.apply_async()
        logger.warning(
            "analysis %s: the queue was lost; sent again from %s (%d sub-tasks)",
            analysis_id,
            resent[0],
            len(resent),
        )
        return 1

    def _resend_main_task(self, analysis_id: int) -> int:
        d = self.dispatcher
        with d.sessions() as session:
            analysis = records.get_analysis(session, analysis_id)
            spec = stage_of_status(analysis.status)
            if spec is None or analysis.status != spec.queued:
                return 0
            run_number, priority = analysis.run_number, analysis.priority
        request = self._request(analysis_id, run_number) or {}
        stage = str(request.get("stage") or spec.stage)
        options = request.get("options") or {}
        task_id = main_task_id(analysis_id, run_number)
        d.app.send_task(
            DISPATCH_TASK,
            args=(analysis_id, run_number, stage, options),
            queue=keys.CONTROLLER_QUEUE,
            priority=broker_priority(priority),
            ignore_result=True,
            task_id=task_id,
        )
        logger.warning(
            "analysis %s: its main task was lost with the queue; %s requested again",
            analysis_id,
            stage,
        )
        return 1
