"""Pod deletion cost against a fake Kubernetes API server at the wire.

Covers: off without error outside a cluster (no service account, or no pod name); in a
"cluster" (service-account token, namespace and CA files, HTTPS with that CA) busy/idle
patch the pod's ``controller.kubernetes.io/pod-deletion-cost`` with a JSON merge patch;
only the 0 -> 1 and 1 -> 0 transitions of running tasks patch, counted across processes;
``reset`` clears a stale count; a rotated token is picked up; API errors, an unreachable
server and a slow one (a patch costs at most its timeout) never raise into the caller; a
service account without its CA turns the marker off with a warning; every request is allowed by the worker Role, and the
Role grants nothing the code does not use.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from oasis_keda.core.kube import DELETION_COST_ANNOTATION as ANNOTATION
from oasis_keda.core.kube import from_kubeconfig
from tests.k8s_support import (
    FakeKubeAPI,
    allowed,
    fake_kube_api,
    granted,
    role_rules,
    tls_files,
    used,
)
from worker.deletion_cost import (
    BUSY_COST,
    IDLE_COST,
    PATCH_TIMEOUT_S,
    PodDeletionCost,
)

NS = "oasis"
POD = "oasis-worker-synth-5d8f7-abcde"
ROLE = "oasis-worker-deletion-cost"


def _pod() -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS, "annotations": {"keep": "me"}},
    }


def _cost(api: FakeKubeAPI) -> str | None:
    annotations = api.get("", "pods", NS, POD)["metadata"].get("annotations") or {}
    assert annotations.get("keep") == "me"  # a merge patch leaves other annotations alone
    return annotations.get(ANNOTATION)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeKubeAPI, dict[str, str], Path]]:
    """An HTTPS fake API server, a service-account directory and a pod environment."""
    ca, cert, key = tls_files(tmp_path)
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("sa-token-1\n")
    (sa / "namespace").write_text(NS)
    (sa / "ca.crt").write_bytes(ca.read_bytes())
    with fake_kube_api(token="sa-token-1", tls=(str(cert), str(key))) as api:
        api.put("", "pods", _pod())
        port = api.url.rsplit(":", 1)[1]
        env = {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": port,
            "OASIS_KEDA_POD_NAME": POD,
        }
        yield api, env, sa


def _marker(env: dict[str, str], sa: Path, state: Path) -> PodDeletionCost:
    return PodDeletionCost.from_env(env, service_account_dir=sa, state_dir=state)


@pytest.mark.parametrize(
    "env",
    [{}, {"OASIS_KEDA_POD_NAME": POD}, {"KUBERNETES_SERVICE_HOST": "127.0.0.1"}],
)
def test_off_without_error_outside_a_cluster(env: dict[str, str], tmp_path: Path) -> None:
    marker = PodDeletionCost.from_env(
        env, service_account_dir=tmp_path / "absent", state_dir=tmp_path
    )
    assert not marker.enabled
    marker.reset()
    marker.busy()
    marker.idle()
    assert not list(tmp_path.iterdir())  # not even the counter file


def test_busy_and_idle_patch_the_own_pod_over_https(
    cluster: tuple[FakeKubeAPI, dict[str, str], Path], tmp_path: Path
) -> None:
    api, env, sa = cluster
    marker = _marker(env, sa, tmp_path)
    assert marker.enabled and marker.namespace == NS
    marker.busy()
    assert _cost(api) == str(BUSY_COST)
    marker.idle()
    assert _cost(api) == str(IDLE_COST)
    patches = [r for r in api.requests if r.verb == "patch"]
    assert [(r.resource, r.namespace, r.name) for r in patches] == [("pods", NS, POD)] * 2
    assert {r.content_type for r in patches} == {"application/merge-patch+json"}
    assert patches[0].body == {"metadata": {"annotations": {ANNOTATION: str(BUSY_COST)}}}


def test_only_transitions_patch(
    cluster: tuple[FakeKubeAPI, dict[str, str], Path], tmp_path: Path
) -> None:
    api, env, sa = cluster
    marker = _marker(env, sa, tmp_path)
    marker.busy()
    marker.busy()  # a second task in the same pod: still busy, no call
    marker.idle()  # one task still runs
    assert _cost(api) == str(BUSY_COST)
    assert len(api.requests) == 1
    marker.idle()
    marker.idle()  # an extra idle (e.g. a task that failed before prerun) stays at 0
    assert _cost(api) == str(IDLE_COST)
    assert len(api.requests) == 2


def test_running_tasks_are_counted_across_processes(
    cluster: tuple[FakeKubeAPI, dict[str, str], Path], tmp_path: Path
) -> None:
    """Celery's prefork pool runs tasks in several processes of one pod."""
    api, env, sa = cluster
    script = (
        "import sys; from pathlib import Path;"
        "from worker.deletion_cost import PodDeletionCost;"
        "m = PodDeletionCost.from_env(dict(arg.split('=', 1) for arg in sys.argv[3:]),"
        " service_account_dir=Path(sys.argv[2]), state_dir=Path(sys.argv[1]));"
        "assert m.enabled; getattr(m, sys.stdin.read())()"
    )
    costs = []
    for step in ("busy", "busy", "idle", "idle"):
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path), str(sa)]
            + [f"{k}={v}" for k, v in env.items()],
            input=step,
            text=True,
            check=True,
            timeout=60,
        )
        costs.append(_cost(api))
    assert costs == [str(BUSY_COST), str(BUSY_COST), str(BUSY_COST), str(IDLE_COST)]
    assert len(api.requests) == 2


def test_reset_clears_a_stale_count(
    cluster: tuple[FakeKubeAPI, dict[str, str], Path], tmp_path: Path
) -> None:
    api, env, sa = cluster
    _marker(env, sa, tmp_path).busy()  # a pool process that was then killed
    marker = _marker(env, sa, tmp_path)
    marker.reset()
    assert _cost(api) == str(IDLE_COST)
    marker.busy()
    assert _cost(api) == str(BUSY_COST)


def test_a_rotated_token_is_read_again(
    cluster: tuple[FakeKubeAPI, dict[str, str], Path], tmp_path: Path
) -> None:
    api, env, sa = cluster
    marker = _marker(env, sa, tmp_path)
    marker.busy()
    api.tokens = {"sa-token-2"}
    (sa / "token").write_text("sa-token-2\n")
    marker.idle()
    assert _cost(api) == str(IDLE_COST)


def test_api_errors_never_reach_the_worker(
    cluster: tuple[FakeKubeAPI, dict[str, str], Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, env, sa = cluster
    marker = _marker(env, sa, tmp_path)
    api.tokens = {"someone-else"}  # 401 from now on
    with caplog.at_level(logging.WARNING, logger="worker.deletion_cost"):
        marker.busy()
    assert "could not update pod deletion cost" in caplog.text
    assert "401" in caplog.text
    api.stop()  # connection refused from now on
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="worker.deletion_cost"):
        marker.idle()
        marker.busy()
    assert "Unreachable" in caplog.text


def test_a_slow_api_server_costs_a_patch_at_most_its_timeout(
    cluster: tuple[FakeKubeAPI, dict[str, str], Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, env, sa = cluster
    marker = _marker(env, sa, tmp_path)
    api.delay_s = 3 * PATCH_TIMEOUT_S
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="worker.deletion_cost"):
        marker.busy()
    assert time.monotonic() - started < PATCH_TIMEOUT_S + 1.5
    assert "could not update pod deletion cost" in caplog.text
    assert "Unreachable" in caplog.text and "timed out" in caplog.text


def test_a_service_account_without_its_ca_is_off_with_a_warning(
    cluster: tuple[FakeKubeAPI, dict[str, str], Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, env, sa = cluster
    (sa / "ca.crt").unlink()
    with caplog.at_level(logging.WARNING, logger="worker.deletion_cost"):
        marker = _marker(env, sa, tmp_path)
    assert not marker.enabled
    assert f"pod deletion cost off: service account {sa} has no ca.crt" in caplog.text
    marker.busy()
    assert api.requests == []


def test_a_pod_that_is_gone_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with fake_kube_api(token="t") as api:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "current-context": "c",
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                    "clusters": [{"name": "c", "cluster": {"server": api.url}}],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                }
            )
        )
        client = from_kubeconfig({"KUBECONFIG": str(kubeconfig)}, namespace=NS)
        marker = PodDeletionCost(client, pod_name="vanished", state_dir=tmp_path)
        with caplog.at_level(logging.WARNING, logger="worker.deletion_cost"):
            marker.busy()
        assert [r.name for r in api.requests] == ["vanished"]
    assert "Kubernetes API error 404 NotFound: patch pod oasis/vanished" in caplog.text
    assert 'pods "vanished" not found' in caplog.text


def test_worker_role_allows_exactly_what_the_code_calls(
    cluster: tuple[FakeKubeAPI, dict[str, str], Path], tmp_path: Path
) -> None:
    api, env, sa = cluster
    marker = _marker(env, sa, tmp_path)
    marker.reset()
    marker.busy()
    marker.idle()
    rules = role_rules(ROLE)
    assert api.requests
    assert all(allowed(rules, r) for r in api.requests), api.requests
    assert used(api.requests) == granted(rules) == {("", "pods", "patch")}
    assert {r.namespace for r in api.requests} == {NS}
