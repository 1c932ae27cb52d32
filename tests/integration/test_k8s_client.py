"""The official Kubernetes client, as ``oasis_keda.core.kube`` sets it up from kubeconfig,
against a fake API server over real HTTPS.

Covers: the current context (or a named one) picks server, user and namespace; CA from a
file (relative paths resolve against the kubeconfig) or inline data; client-certificate
authentication (inline data, and files relative to the kubeconfig) against a server that
requires it; insecure-skip-tls-verify; ``tls-server-name`` for a server certificate issued
for another name than the URL's host (and the failure without it); ``exec`` credential
plugins: run once when the token has no expiry, run again and the new token used once the
token expires; an ``auth-provider`` oidc id-token sent as the bearer token; HTTPS_PROXY
through a CONNECT proxy (and not HTTP_PROXY for an https server), NO_PROXY bypassing it;
several KUBECONFIG files merged with the first definition winning; the ApiClient made on
first use and again in a forked child; clear errors for a missing kubeconfig, no current
context, an unknown context, a cluster with no server, a file the kubeconfig names but that
is missing, an untrusted server certificate and error statuses.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from oasis_keda.core.kube import KubeClient, from_kubeconfig
from oasis_keda.core.kube_errors import KubeApiError, KubeConfigError
from tests.k8s_support import FakeKubeAPI, connect_proxy, fake_kube_api, tls_files

NS = "oasis"
SELECTOR = "app.kubernetes.io/name=oasis-worker"


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


def _client(path: Path | str, **env: str) -> KubeClient:
    return from_kubeconfig({"KUBECONFIG": str(path), **env})


def _list(client: KubeClient) -> list[Any]:
    return client.list_deployments(client.namespace, label_selector=SELECTOR)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_current_context_with_ca_file_relative_to_the_kubeconfig(
    api: FakeKubeAPI, tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"certificate-authority": tls[0].name},
        user={"token": "tok"},
    )
    client = _client(path)
    assert client.namespace == NS
    assert _list(client) == []
    assert [(r.resource, r.verb, r.namespace, r.token) for r in api.requests] == [
        ("deployments", "list", NS, "tok")
    ]
    env = {"KUBECONFIG": str(path)}
    assert from_kubeconfig(env, context="other").namespace == "default"
    assert from_kubeconfig(env, namespace="x").namespace == "x"


def test_client_certificate_data_against_a_server_that_requires_it(
    tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    ca, cert, key = tls
    with fake_kube_api(token="", tls=(str(cert), str(key)), client_ca=str(ca)) as server:
        path = _write(
            tmp_path / "config",
            server=server.url,
            cluster={"certificate-authority-data": _b64(ca)},
            user={"client-certificate-data": _b64(cert), "client-key-data": _b64(key)},
        )
        assert _list(_client(path)) == []
        assert len(server.requests) == 1


def test_client_certificate_files_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    certs = tmp_path / "pki"
    certs.mkdir()
    ca, cert, key = tls_files(certs)
    with fake_kube_api(token="", tls=(str(cert), str(key)), client_ca=str(ca)) as server:
        path = _write(
            tmp_path / "config",
            server=server.url,
            cluster={"certificate-authority": "pki/ca.crt"},
            user={"client-certificate": "pki/tls.crt", "client-key": "pki/tls.key"},
        )
        assert _list(_client(path)) == []
        assert len(server.requests) == 1

        no_cert = _write(
            tmp_path / "no-cert",
            server=server.url,
            cluster={"certificate-authority": "pki/ca.crt"},
            user={},
        )
        with pytest.raises(KubeApiError, match="Unreachable"):
            _list(_client(no_cert))  # the server wants a client certificate
        assert len(server.requests) == 1


def test_insecure_skip_tls_verify(api: FakeKubeAPI, tmp_path: Path) -> None:
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"insecure-skip-tls-verify": True},
        user={"token": "tok"},
    )
    assert _list(_client(path)) == []  # and no InsecureRequestWarning (warnings are errors)


def test_untrusted_server_certificate_is_a_clear_error(api: FakeKubeAPI, tmp_path: Path) -> None:
    path = _write(tmp_path / "config", server=api.url, cluster={}, user={"token": "tok"})
    with pytest.raises(KubeApiError, match="Unreachable.*CERTIFICATE_VERIFY_FAILED"):
        _list(_client(path))


@pytest.mark.parametrize("server_name", ["kube-api.oasis.test", None])
def test_tls_server_name(tmp_path: Path, server_name: str | None) -> None:
    """The certificate names kube-api.oasis.test only; the URL says 127.0.0.1."""
    ca, cert, key = tls_files(tmp_path, dns_names=["kube-api.oasis.test"])
    with fake_kube_api(token="tok", tls=(str(cert), str(key))) as server:
        cluster: dict[str, Any] = {"certificate-authority": str(ca)}
        if server_name:
            cluster["tls-server-name"] = server_name
        path = _write(
            tmp_path / "config", server=server.url, cluster=cluster, user={"token": "tok"}
        )
        if server_name:
            assert _list(_client(path)) == []
            assert len(server.requests) == 1
        else:
            with pytest.raises(KubeApiError, match="Unreachable.*not valid for '127.0.0.1'"):
                _list(_client(path))
            assert server.requests == []


def _exec_plugin(tmp_path: Path, *, expires_in_s: float | None) -> tuple[Path, Path]:
    """A credential plugin answering ``tok-N`` on its N-th run; ``(plugin, run counter)``."""
    counter = tmp_path / "runs"
    plugin = tmp_path / "get-token"
    plugin.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""\
            import datetime as dt, json, os, pathlib
            p = pathlib.Path({str(counter)!r})
            n = len(p.read_text()) + 1 if p.exists() else 1
            p.write_text("x" * n)
            status = {{"token": os.environ["TOKEN_PREFIX"] + str(n)}}
            expires_in = {expires_in_s!r}
            if expires_in is not None:
                at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=expires_in)
                status["expirationTimestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            print(json.dumps({{
                "apiVersion": "client.authentication.k8s.io/v1",
                "kind": "ExecCredential",
                "status": status,
            }}))
            """
        )
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    return plugin, counter


def _exec_user(plugin: Path) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "env": [{"name": "TOKEN_PREFIX", "value": "tok-"}],
            "interactiveMode": "Never",
        }
    }


def _runs(counter: Path) -> int:
    return len(counter.read_text()) if counter.exists() else 0


def test_exec_credential_plugin_without_expiry_runs_once(
    api: FakeKubeAPI, tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    api.tokens = {"tok-1"}
    plugin, counter = _exec_plugin(tmp_path, expires_in_s=None)
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"certificate-authority": str(tls[0])},
        user=_exec_user(plugin),
    )
    client = _client(path)
    assert _runs(counter) == 0  # credentials are fetched on the first call, not before
    _list(client)
    _list(client)
    assert _runs(counter) == 1
    assert [r.token for r in api.requests] == ["tok-1", "tok-1"]


def test_exec_plugin_runs_again_once_its_token_expires(
    api: FakeKubeAPI, tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The client renews an exec token 5 minutes before its expirationTimestamp, so a token
    said to expire in 5 min + 4 s is good for 3 to 4 more seconds (the timestamp has whole
    seconds)."""
    api.tokens = {"tok-1", "tok-2", "tok-3"}
    plugin, counter = _exec_plugin(tmp_path, expires_in_s=300 + 4)
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"certificate-authority": str(tls[0])},
        user=_exec_user(plugin),
    )
    client = _client(path)
    started = time.monotonic()
    _list(client)
    _list(client)  # still valid: the plugin is not run again
    assert time.monotonic() - started < 3, "too slow to see the token while still valid"
    assert _runs(counter) == 1
    time.sleep(max(0.0, started + 4.5 - time.monotonic()))  # now it has expired
    _list(client)
    assert _runs(counter) == 2
    assert [r.token for r in api.requests] == ["tok-1", "tok-1", "tok-2"]


def _jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    payload = part(claims)
    while len(payload) % 4 not in (2, 3):  # a length the client accepts as unpadded base64
        claims = {**claims, "pad": claims.get("pad", "") + "x"}
        payload = part(claims)
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{payload}.c2lnbmF0dXJl"


def test_oidc_auth_provider_sends_an_unexpired_id_token(
    api: FakeKubeAPI, tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    id_token = _jwt({"iss": "https://issuer.invalid", "sub": "operator", "exp": time.time() + 3600})
    api.tokens = {id_token}
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"certificate-authority": str(tls[0])},
        user={
            "auth-provider": {
                "name": "oidc",
                "config": {
                    "client-id": "oasis-keda",
                    "idp-issuer-url": "https://issuer.invalid",  # not asked: token still valid
                    "id-token": id_token,
                    "refresh-token": "unused",
                },
            }
        },
    )
    assert _list(_client(path)) == []
    assert [r.token for r in api.requests] == [id_token]


def test_https_proxy_tunnels_and_no_proxy_bypasses(
    api: FakeKubeAPI, tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"certificate-authority": str(tls[0])},
        user={"token": "tok"},
    )
    port = api.url.rsplit(":", 1)[1]
    with connect_proxy() as proxy:
        # HTTP_PROXY is for http:// servers: pointing it at a closed port changes nothing.
        via = _client(path, HTTPS_PROXY=proxy.url, HTTP_PROXY="http://127.0.0.1:9")
        assert _list(via) == []
        assert proxy.targets == [f"127.0.0.1:{port}"]
        bypass = _client(path, HTTPS_PROXY=proxy.url, NO_PROXY="localhost,127.0.0.1")
        assert _list(bypass) == []
        assert proxy.targets == [f"127.0.0.1:{port}"]  # the second call went direct
    assert len(api.requests) == 2


def test_kubeconfig_files_merge_first_definition_wins(api: FakeKubeAPI, tmp_path: Path) -> None:
    first = _write(
        tmp_path / "a",
        server=api.url,
        cluster={"insecure-skip-tls-verify": True},
        user={"token": "tok"},
    )
    second = _write(tmp_path / "b", server="https://elsewhere:1", cluster={}, user={"token": "no"})
    data = yaml.safe_load(second.read_text())
    data["current-context"] = "other"  # the first file's current-context wins, as in kubectl
    second.write_text(yaml.safe_dump(data))
    client = _client(f"{first}{os.pathsep}{second}")
    assert client.namespace == NS
    assert _list(client) == []
    assert [r.token for r in api.requests] == ["tok"]


@pytest.mark.parametrize(
    ("content", "context", "message"),
    [
        (None, None, "no kubeconfig found"),
        ("", None, "is empty"),
        ({"contexts": []}, None, "no current-context"),
        ({"current-context": "gone", "contexts": []}, None, "no context named 'gone'"),
        ({"current-context": "c", "contexts": []}, "other", "no context named 'other'"),
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
        ("a: [b\n", None, "is not valid YAML"),
    ],
)
def test_bad_kubeconfigs_are_clear_errors(
    tmp_path: Path, content: Any, context: str | None, message: str
) -> None:
    path = tmp_path / "config"
    if content is not None:
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    with pytest.raises(KubeConfigError, match=message):
        from_kubeconfig({"KUBECONFIG": str(path)}, context=context)


def test_a_missing_file_named_in_the_kubeconfig_is_a_config_error(
    api: FakeKubeAPI, tmp_path: Path
) -> None:
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"certificate-authority": "gone/ca.crt"},
        user={"token": "tok"},
    )
    client = _client(path)  # files are read on the first call
    with pytest.raises(
        KubeConfigError, match=r"context 'main'.*File does not exist: .*gone/ca.crt"
    ):
        _list(client)


def test_error_statuses_carry_code_and_reason(api: FakeKubeAPI, tmp_path: Path) -> None:
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"insecure-skip-tls-verify": True},
        user={"token": "tok"},
    )
    client = _client(path)
    with pytest.raises(KubeApiError) as caught:
        client.get_scaled_object(NS, "missing")
    assert (caught.value.status, caught.value.reason) == (404, "NotFound")
    assert "get scaledobject oasis/missing at https://127.0.0.1:" in str(caught.value)
    assert 'scaledobjects "missing" not found' in str(caught.value)
    api.tokens = {"other"}
    with pytest.raises(KubeApiError, match="Kubernetes API error 401 Unauthorized: list deploy"):
        _list(client)


def test_one_api_client_per_process_made_on_first_use(
    api: FakeKubeAPI, tls: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Celery forks its pool after the worker set up its clients: a child makes its own."""
    api.tokens = {"tok-1", "tok-2"}
    plugin, counter = _exec_plugin(tmp_path, expires_in_s=None)
    path = _write(
        tmp_path / "config",
        server=api.url,
        cluster={"certificate-authority": str(tls[0])},
        user=_exec_user(plugin),
    )
    client = _client(path)
    first = client.api_client()
    assert client.api_client() is first
    _list(client)
    pid = os.fork()
    if pid == 0:  # the child: a new ApiClient (and credentials) of its own
        code = 1
        try:
            code = 0 if client.api_client() is not first and _list(client) == [] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.api_client() is first
    assert _runs(counter) == 2
    assert [r.token for r in api.requests] == ["tok-1", "tok-2"]
