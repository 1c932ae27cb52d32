"""The small Kubernetes client's view of kubeconfig, against a fake API server over HTTPS.

Covers: the current context (or a named one) picks server, user and namespace; CA from a
file (relative paths resolve against the kubeconfig) or inline data; client-certificate
authentication from inline data against a server that requires it; insecure-skip-tls-verify;
an exec credential plugin (run once, token cached); several KUBECONFIG files merged with
the first definition winning; clear errors for a missing kubeconfig, no current context,
an unknown context, an untrusted server certificate and error statuses.
"""

from __future__ import annotations

import base64
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from oasis_keda.k8s.client import KubeClient, deployments_path, kubeconfig
from oasis_keda.k8s.errors import KubeApiError, KubeConfigError
from tests.k8s_support import FakeKubeAPI, fake_kube_api, tls_files

NS = "oasis"


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path, Path]:
    return tls_files(tmp_path)


@pytest.fixture
def api(tls: tuple[Path, Path, Path]) -> Iterator[FakeKubeAPI]:
    _, cert, key = tls
    with fake_kube_api(token="tok", tls=(str(cert), str(key))) as server:
        yield server


def _write(path: Path, *, server: str, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "main",
                "contexts": [
                    {"name": "main", "context": {"cluster": "c", "user": "u", "namespace": NS}},
                    {"name": "other", "context": {"cluster": "c", "user": "u"}},
                ],
                "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def _list(client: KubeClient) -> list[Any]:
    items: list[Any] = client.get(deployments_path(client.namespace)).get("items", [])
    return items


def test_current_context_with_ca_file_relative_to_the_kubeconfig(
    api: FakeKubeAPI, tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"certificate-authority": tls[0].name},
        user={"token": "tok"},
    )
    config = kubeconfig({"KUBECONFIG": str(path)})
    assert (config.server, config.namespace) == (api.url, NS)
    assert _list(KubeClient(config)) == []
    assert kubeconfig({"KUBECONFIG": str(path)}, context="other").namespace == "default"
    assert kubeconfig({"KUBECONFIG": str(path)}, namespace="x").namespace == "x"


def test_client_certificate_data_against_a_server_that_requires_it(
    tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    ca, cert, key = tls
    with fake_kube_api(token="", tls=(str(cert), str(key)), client_ca=str(ca)) as server:

        def b64(p: Path) -> str:
            return base64.b64encode(p.read_bytes()).decode()

        path = _write(
            tmp_path / "config",
            server=server.url,
            cluster={"certificate-authority-data": b64(ca)},
            user={"client-certificate-data": b64(cert), "client-key-data": b64(key)},
        )
        client = KubeClient(kubeconfig({"KUBECONFIG": str(path)}))
        assert _list(client) == []
        assert len(server.requests) == 1


def test_insecure_skip_tls_verify(api: FakeKubeAPI, tmp_path: Path) -> None:
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"insecure-skip-tls-verify": True},
        user={"token": "tok"},
    )
    assert _list(KubeClient(kubeconfig({"KUBECONFIG": str(path)}))) == []


def test_untrusted_server_certificate_is_a_clear_error(api: FakeKubeAPI, tmp_path: Path) -> None:
    path = _write(tmp_path / "config", server=api.url, cluster={}, user={"token": "tok"})
    client = KubeClient(kubeconfig({"KUBECONFIG": str(path)}))
    with pytest.raises(KubeApiError, match="Unreachable.*CERTIFICATE_VERIFY_FAILED"):
        _list(client)


def test_exec_credential_plugin_runs_once(
    api: FakeKubeAPI, tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    counter = tmp_path / "runs"
    plugin = tmp_path / "get-token"
    plugin.write_text(
        f"#!{sys.executable}\n"
        "import json, os, pathlib\n"
        f"p = pathlib.Path({str(counter)!r}); p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
        "'kind': 'ExecCredential', 'status': {'token': os.environ['TOKEN_FROM_ENV']}}))\n"
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"certificate-authority": str(tls[0])},
        user={
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": str(plugin),
                "env": [{"name": "TOKEN_FROM_ENV", "value": "tok"}],
            }
        },
    )
    env = {"KUBECONFIG": str(path), "PATH": os.environ.get("PATH", "")}
    client = KubeClient(kubeconfig(env), env=env)
    _list(client)
    _list(client)
    assert counter.read_text() == "x"


def test_kubeconfig_files_merge_first_definition_wins(api: FakeKubeAPI, tmp_path: Path) -> None:
    first = _write(
        tmp_path / "a",
        server=api.url,
        cluster={"insecure-skip-tls-verify": True},
        user={"token": "tok"},
    )
    second = _write(tmp_path / "b", server="https://elsewhere:1", cluster={}, user={"token": "no"})
    config = kubeconfig({"KUBECONFIG": f"{first}{os.pathsep}{second}"})
    assert config.server == api.url and config.token == "tok"


@pytest.mark.parametrize(
    ("content", "context", "message"),
    [
        (None, None, "no kubeconfig found"),
        ({"contexts": []}, None, "no current-context"),
        ({"current-context": "gone", "contexts": []}, None, "no context named 'gone'"),
        (
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "x"}}],
                "clusters": [{"name": "x", "cluster": {}}],
            },
            None,
            "has no server",
        ),
        ("- not\n- a mapping\n", None, "is not a mapping"),
    ],
)
def test_bad_kubeconfigs_are_clear_errors(
    tmp_path: Path, content: Any, context: str | None, message: str
) -> None:
    path = tmp_path / "config"
    if content is not None:
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    with pytest.raises(KubeConfigError, match=message):
        kubeconfig({"KUBECONFIG": str(path)}, context=context)


def test_error_statuses_carry_code_and_reason(api: FakeKubeAPI, tmp_path: Path) -> None:
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"insecure-skip-tls-verify": True},
        user={"token": "tok"},
    )
    client = KubeClient(kubeconfig({"KUBECONFIG": str(path)}))
    with pytest.raises(KubeApiError) as caught:
        client.get(f"{deployments_path(NS)}/missing")
    assert (caught.value.status, caught.value.reason) == (404, "NotFound")
    assert 'deployments "missing" not found' in str(caught.value)
