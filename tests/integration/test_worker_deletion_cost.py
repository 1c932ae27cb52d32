"""A real ``oasis-keda worker serve`` keeps its pod's deletion cost current.

Scale-in is safe only if the ReplicaSet takes idle pods first: a busy worker's pod carries a
high deletion cost, an idle one's a low cost.

The worker process runs with the pod's downward-API variables and a service-account
directory pointing at the fake Kubernetes API server of ``tests/k8s_support.py`` (HTTPS
with the service account's CA, bearer token), and the controller dispatches a trivial
``noop`` stage to it. Covers: the worker marks its pod idle at start-up, busy while a
sub-task runs and idle once the stage is done, patching only its own pod with requests the
worker Role allows; and the same worker outside a cluster (no service account) runs the
stage without calling anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from oasis_keda.core.kube import DELETION_COST_ANNOTATION as ANNOTATION
from oasis_keda.core.registry import Registry
from tests.k8s_support import FakeKubeAPI, allowed, fake_kube_api, role_rules, tls_files
from tests.stack_support import Stack, running_stack, wait_for
from worker.deletion_cost import BUSY_COST, IDLE_COST

MODEL = "noop-model"
NS = "oasis"
POD = "oasis-worker-noop-model-7c9d4-xk2lp"
ROLE = "oasis-worker-deletion-cost"
TOKEN = "sa-token"


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(redis_url, tmp_path) as stack:
        Registry(stack.controller.client).register(MODEL)
        tmp = tmp_path / "tmp"  # the worker's busy counter file, kept out of /tmp
        tmp.mkdir()
        stack.env["TMPDIR"] = str(tmp)
        yield stack


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeKubeAPI]:
    _ca, cert, key = tls_files(tmp_path)
    with fake_kube_api(token=TOKEN, tls=(str(cert), str(key))) as api:
        api.put(
            "",
            "pods",
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD, "namespace": NS}},
        )
        yield api


def _in_pod(stack: Stack, api: FakeKubeAPI, tmp_path: Path) -> None:
    """The environment a worker container gets from the Deployment and its service account."""
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(TOKEN + "\n")
    (sa / "namespace").write_text(NS)
    (sa / "ca.crt").write_bytes((tmp_path / "ca.crt").read_bytes())
    stack.env.update(
        {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": api.url.rsplit(":", 1)[1],
            "OASIS_KEDA_SERVICE_ACCOUNT_DIR": str(sa),
            "OASIS_KEDA_POD_NAME": POD,
            "OASIS_KEDA_POD_NAMESPACE": NS,
        }
    )


def _cost(api: FakeKubeAPI) -> str | None:
    annotations = api.get("", "pods", NS, POD)["metadata"].get("annotations") or {}
    value = annotations.get(ANNOTATION)
    return None if value is None else str(value)


def _patched_costs(api: FakeKubeAPI) -> list[str]:
    return [r.body["metadata"]["annotations"][ANNOTATION] for r in api.requests]


def _analysis(stack: Stack, tmp_path: Path) -> int:
    locations = tmp_path / "location.csv"
    locations.write_text(
        "PortNumber,AccNumber,LocNumber,CountryCode,LocPerilsCovered,LocCurrency,Latitude,Longitude\n"
        "1,A1,1,GB,WTC,GBP,52.1,-0.2\n"
    )
    return stack.controller.create_analysis("a", model_id=MODEL, location_file=locations)


def test_worker_marks_its_pod_busy_while_a_sub_task_runs_then_idle(
    stack: Stack, api: FakeKubeAPI, tmp_path: Path
) -> None:
    _in_pod(stack, api, tmp_path)
    stack.start_controller()
    stack.start_worker(MODEL)
    assert _cost(api) == str(IDLE_COST)  # reset at start-up, before any task
    assert len(api.requests) == 1

    analysis_id = _analysis(stack, tmp_path)
    stack.controller.request(analysis_id, "noop", options={"noop_chunks": 1, "noop_sleep_s": 3})
    wait_for(
        lambda: any(
            s.slug == "noop-chunk-1" and s.status == "STARTED" for s in stack.subtasks(analysis_id)
        ),
        60,
        "the chunk running",
    )
    assert _cost(api) == str(BUSY_COST)  # the chunk sleeps 3 s: still running

    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"
    wait_for(lambda: _cost(api) == str(IDLE_COST), 10, "the pod marked idle again")

    costs = _patched_costs(api)
    # idle at start-up, then busy/idle around every sub-task of the stage (run one by one)
    assert costs[0] == str(IDLE_COST) and costs[-1] == str(IDLE_COST)
    assert costs[1:] == [str(BUSY_COST), str(IDLE_COST)] * (len(costs[1:]) // 2)
    assert len(costs) - 1 == 2 * len(stack.subtasks(analysis_id))
    assert {(r.verb, r.resource, r.namespace, r.name) for r in api.requests} == {
        ("patch", "pods", NS, POD)
    }
    assert {r.content_type for r in api.requests} == {"application/merge-patch+json"}
    rules = role_rules(ROLE)
    assert all(allowed(rules, r) for r in api.requests), api.requests
    assert f"pod {POD} deletion cost set to {BUSY_COST}" in stack.log("worker")


def test_worker_outside_a_cluster_runs_without_patching(
    stack: Stack, api: FakeKubeAPI, tmp_path: Path
) -> None:
    stack.env.update(
        {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": api.url.rsplit(":", 1)[1],
            "OASIS_KEDA_SERVICE_ACCOUNT_DIR": str(tmp_path / "no-service-account"),
            "OASIS_KEDA_POD_NAME": POD,
        }
    )
    stack.start_controller()
    stack.start_worker(MODEL)
    analysis_id = _analysis(stack, tmp_path)
    stack.controller.request(analysis_id, "noop", options={"noop_chunks": 1})
    assert stack.wait_status(analysis_id, {"READY", "INPUTS_GENERATION_ERROR"}) == "READY"
    assert api.requests == []
    assert "could not update pod deletion cost" not in stack.log("worker")
    assert not list((tmp_path / "tmp").glob("oasis-keda-busy-*"))
