"""A small Kubernetes API client: JSON over HTTPS, nothing more.

We call four endpoints (patch our own pod; read Deployments and ScaledObjects), so a full
client library would be mostly dead weight in the worker image. This one speaks the API at
the wire with ``requests`` and knows the two ways a process finds its cluster:

- in-cluster: the service account token, CA and namespace under
  ``/var/run/secrets/kubernetes.io/serviceaccount`` and ``KUBERNETES_SERVICE_HOST/PORT``
  (the token is re-read on every request: bound tokens rotate);
- kubeconfig: the current (or named) context of ``$KUBECONFIG`` / ``~/.kube/config``, with
  token, client certificate, basic auth or an ``exec`` credential plugin, like kubectl.

Sessions are created lazily and per process, because Celery forks its pool after import.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import subprocess
import tempfile
import urllib.parse
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
import urllib3
import yaml

from oasis_keda.k8s.errors import KubeApiError, KubeConfigError

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_TIMEOUT_S = 5.0
MERGE_PATCH = "application/merge-patch+json"

Json = dict[str, Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """Where the API server is and how to authenticate to it."""

    server: str
    """Base URL of the API server, e.g. ``https://10.96.0.1:443``."""

    namespace: str = "default"
    """Namespace of the context or of the service account."""

    ca_file: str | None = None
    """CA bundle verifying the server; ``None`` = system CAs."""

    insecure: bool = False
    """Skip server certificate verification (kubeconfig ``insecure-skip-tls-verify``)."""

    token: str | None = None
    """Static bearer token."""

    token_file: str | None = None
    """File holding the bearer token, re-read on each request."""

    client_cert: tuple[str, str] | None = None
    """``(cert file, key file)`` for client-certificate authentication."""

    basic_auth: tuple[str, str] | None = None
    """``(username, password)``."""

    exec_config: Mapping[str, Any] | None = None
    """kubeconfig ``user.exec`` credential plugin, run when a token is first needed."""


def in_cluster_config(
    env: Mapping[str, str], *, root: Path = SERVICE_ACCOUNT_DIR
) -> ClusterConfig | None:
    """The service account's view of the cluster, or ``None`` outside a cluster."""
    host = env.get("KUBERNETES_SERVICE_HOST")
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    token_file = root / "token"
    if not host or not token_file.is_file():
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    ns_file = root / "namespace"
    namespace = ns_file.read_text().strip() if ns_file.is_file() else "default"
    ca = root / "ca.crt"
    return ClusterConfig(
        server=f"https://{host}:{port}",
        namespace=namespace,
        ca_file=str(ca) if ca.is_file() else None,
        token_file=str(token_file),
    )


def _load_kubeconfig_files(env: Mapping[str, str]) -> list[tuple[Path, Json]]:
    raw = env.get("KUBECONFIG") or str(Path(env.get("HOME", str(Path.home()))) / ".kube/config")
    docs = []
    for part in raw.split(os.pathsep):
        if not part:
            continue
        path = Path(part).expanduser()
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise KubeConfigError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise KubeConfigError(f"kubeconfig {path} is not a mapping")
        docs.append((path, data))
    if not docs:
        raise KubeConfigError(f"no kubeconfig found (looked at {raw})")
    return docs


def _named(docs: list[tuple[Path, Json]], section: str, name: str) -> tuple[Path, Json]:
    # kubectl merges KUBECONFIG files; the first file that defines a name wins.
    for path, data in docs:
        for item in data.get(section) or []:
            if item.get("name") == name:
                return path, item.get(section[:-1]) or {}
    raise KubeConfigError(f"kubeconfig has no {section[:-1]} named {name!r}")


class _DataFiles:
    """Writes ``*-data`` kubeconfig fields to private temporary files (requests needs paths)."""

    def __init__(self) -> None:
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def write(self, name: str, b64: str) -> str:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="kubectl-oasis-")
        path = Path(self._dir.name) / name
        path.write_bytes(base64.b64decode(b64))
        path.chmod(0o600)
        return str(path)


_DATA_FILES = _DataFiles()


def _file_or_data(item: Json, key: str, base: Path) -> str | None:
    if item.get(f"{key}-data"):
        return _DATA_FILES.write(key, str(item[f"{key}-data"]))
    if item.get(key):
        path = Path(str(item[key])).expanduser()
        return str(path if path.is_absolute() else base.parent / path)
    return None


def kubeconfig(
    env: Mapping[str, str], *, context: str | None = None, namespace: str | None = None
) -> ClusterConfig:
    """The cluster of the current (or the named) kubeconfig context."""
    docs = _load_kubeconfig_files(env)
    ctx_name = context or next(
        (str(d["current-context"]) for _, d in docs if d.get("current-context")), ""
    )
    if not ctx_name:
        raise KubeConfigError("kubeconfig has no current-context; pass --context")
    _, ctx = _named(docs, "contexts", ctx_name)
    cluster_path, cluster = _named(docs, "clusters", str(ctx.get("cluster", "")))
    user_path, user = (
        _named(docs, "users", str(ctx["user"])) if ctx.get("user") else (cluster_path, {})
    )
    if not cluster.get("server"):
        raise KubeConfigError(f"cluster of context {ctx_name!r} has no server")
    cert = _file_or_data(user, "client-certificate", user_path)
    key = _file_or_data(user, "client-key", user_path)
    token_file = user.get("tokenFile")
    basic = (str(user["username"]), str(user.get("password", ""))) if user.get("username") else None
    return ClusterConfig(
        server=str(cluster["server"]).rstrip("/"),
        namespace=namespace or str(ctx.get("namespace") or "default"),
        ca_file=_file_or_data(cluster, "certificate-authority", cluster_path),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=str(user["token"]) if user.get("token") else None,
        token_file=str(token_file) if token_file else None,
        client_cert=(cert, key) if cert and key else None,
        basic_auth=basic,
        exec_config=user.get("exec"),
    )


def _run_exec_plugin(spec: Mapping[str, Any], env: Mapping[str, str]) -> Json:
    """Run a client-go credential plugin and return its ``status`` (token or cert data)."""
    command = [str(spec.get("command", ""))] + [str(a) for a in spec.get("args") or []]
    extra = {str(e["name"]): str(e["value"]) for e in spec.get("env") or []}
    try:
        done = subprocess.run(
            command,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        status = json.loads(done.stdout).get("status") or {}
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise KubeConfigError(f"credential plugin {command[0]!r} failed: {exc}") from exc
    if not isinstance(status, dict):
        raise KubeConfigError(f"credential plugin {command[0]!r} returned no status")
    return status


class KubeClient:
    """JSON requests against one API server."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.timeout_s = timeout_s
        self._env = dict(env or {})
        self._session: requests.Session | None = None
        self._session_pid = 0
        self._exec_token: str | None = None

    @property
    def namespace(self) -> str:
        return self.config.namespace

    def _get_session(self) -> requests.Session:
        if self._session is None or self._session_pid != os.getpid():
            session = requests.Session()
            session.trust_env = False  # no proxies from the environment for the API server
            cfg = self.config
            session.verify = False if cfg.insecure else (cfg.ca_file or True)
            if cfg.client_cert:
                session.cert = cfg.client_cert
            if cfg.basic_auth:
                session.auth = cfg.basic_auth
            self._session, self._session_pid = session, os.getpid()
        return self._session

    def _token(self) -> str | None:
        cfg = self.config
        if cfg.token_file:
            try:
                return Path(cfg.token_file).read_text().strip()
            except OSError as exc:
                raise KubeConfigError(f"cannot read token file {cfg.token_file}: {exc}") from exc
        if cfg.token:
            return cfg.token
        if cfg.exec_config:
            if self._exec_token is None:
                status = _run_exec_plugin(cfg.exec_config, self._env or dict(os.environ))
                if status.get("clientCertificateData") and status.get("clientKeyData"):
                    cert = _DATA_FILES.write("exec-cert", _b64(status["clientCertificateData"]))
                    key = _DATA_FILES.write("exec-key", _b64(status["clientKeyData"]))
                    self._get_session().cert = (cert, key)
                self._exec_token = str(status.get("token") or "")
            return self._exec_token or None
        return None

    def request(
        self, method: str, path: str, *, body: Any = None, content_type: str = "application/json"
    ) -> Json:
        """Send one request; return the decoded JSON body or raise :class:`KubeApiError`."""
        headers = {"Accept": "application/json"}
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        url = self.config.server + path
        try:
            with warnings.catch_warnings():
                if self.config.insecure:  # asked for in the kubeconfig: do not warn per call
                    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                resp = self._get_session().request(
                    method, url, data=data, headers=headers, timeout=self.timeout_s
                )
        except requests.RequestException as exc:
            raise KubeApiError(0, "Unreachable", f"{method} {url}: {exc}") from exc
        if resp.status_code >= 400:
            raise _api_error(resp)
        try:
            result = resp.json() if resp.content else {}
        except ValueError as exc:
            raise KubeApiError(resp.status_code, "BadResponse", "body is not JSON") from exc
        if not isinstance(result, dict):
            raise KubeApiError(resp.status_code, "BadResponse", "body is not a JSON object")
        return result

    def get(self, path: str) -> Json:
        return self.request("GET", path)

    def merge_patch(self, path: str, patch: Json) -> Json:
        return self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _api_error(resp: requests.Response) -> KubeApiError:
    try:
        status = resp.json()
        reason = str(status.get("reason") or resp.reason)
        message = str(status.get("message") or resp.text[:200])
    except ValueError:
        reason, message = str(resp.reason), resp.text[:200]
    return KubeApiError(resp.status_code, reason, message)


# Paths of the resources we use: one place, so the RBAC test can reason about them.
def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def deployments_path(namespace: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments"


def scaled_objects_path(namespace: str) -> str:
    return f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects"


def safe_url(url: str) -> str:
    """A Redis URL with its password masked, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urllib.parse.urlunsplit(parts)
