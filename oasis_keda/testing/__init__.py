"""Test and benchmark hooks: a trivial stage and pauses, for real worker and controller
processes under test. Never loaded in production.

The integration tests and ``bench/bench_subtasks.py`` drive real ``oasis-keda controller
serve`` and ``worker serve`` processes, and need what production must not have: the
``noop`` stage (prepare, N chunks, collect, cleanup doing no work, whose chunks can sleep,
fail or fail transiently on request) and pauses at the points where a test kills a process.
:func:`install` adds them to this process through the extension points of the layers below
(``core.stages.register_stage``, ``worker.tasks.register_bodies``,
``task_controller.dispatch.register_planner``, ``task_controller.app.add_dispatch_hook``).

A process loads them only when asked: the ``oasis-keda`` entry point calls :func:`install`
when started with ``--test-hooks`` or with ``OASIS_KEDA_TEST_HOOKS=1`` in its environment,
and passes the variable on to the processes it starts (``up``'s controller and workers).
A test process calls :func:`install` itself before it requests the ``noop`` stage.
Without them the ``noop`` stage is an unknown stage (refused) and the hook options below
are ignored. Options, given with a request (``Requests.request(..., options=...)``):

- ``noop_chunks`` (default 1), ``noop_sleep_s`` (each chunk sleeps), ``noop_fail_chunk``
  (that chunk fails with an InputError), ``noop_transient_failures`` (chunk 1 fails its
  first N attempts with a TransientError): the ``noop`` stage's.
- ``pause_after_s: {slug: seconds}``: a sub-task of any stage holds after its work, before
  it is recorded and acknowledged, with a ``.paused-<slug>`` marker in its run directory.
- ``dispatch_pause_s``: the controller holds the main task (and its lease) that long
  before it dispatches.
"""

from __future__ import annotations

from typing import Final

#: The environment variable that makes the ``oasis-keda`` entry point load the hooks.
ENV_VAR: Final = "OASIS_KEDA_TEST_HOOKS"

_installed = False


def install() -> None:
    """Load the hooks into this process (once; later calls do nothing). Call it before the
    process makes its Celery app: the app registers the stages' tasks when it is made."""
    global _installed
    if _installed:
        return
    from oasis_keda.core.stages import register_stage
    from oasis_keda.testing import noop_stage, pauses
    from task_controller.app import add_dispatch_hook
    from task_controller.dispatch import register_planner
    from worker.tasks import register_bodies

    register_stage(noop_stage.NOOP_SPEC)
    register_bodies(noop_stage.BODIES)
    register_planner(noop_stage.NOOP_SPEC.stage, noop_stage.plan)
    register_bodies(pauses.pausing_bodies())  # after the noop bodies: they pause too
    add_dispatch_hook(pauses.dispatch_pause)
    _installed = True
