"""The Kubernetes API, through the official ``kubernetes`` Python client.

oasis-keda makes four calls: a worker patches its own pod (``deletion_cost``); the
``kubectl oasis`` plugin lists Deployments and lists or gets KEDA ScaledObjects
(``CustomObjectsApi``). Finding the cluster and authenticating is the official client's job:

- in a pod, the service account: ``kubernetes.config.incluster_config`` (the loader that
  ``load_incluster_config()`` runs, given the directory and environment to read, so that
  tests can point a worker at a fake cluster). The token file is read again before every
  call rather than once a minute: a rotated token is used at once;
- elsewhere, the current (or named) context of ``$KUBECONFIG`` / ``~/.kube/config``:
  ``kubernetes.config.load_kube_config(config_file=..., context=...)`` with what it
  supports: token or token file, client certificate, basic auth, ``exec`` credential
  plugins, ``auth-provider`` oidc, ``certificate-authority``, ``insecure-skip-tls-verify``
  and ``tls-server-name``. Before handing over we read the files ourselves only to name
  what is missing (no file, no current context, unknown context, a cluster with no
  server), to take the context's namespace, which the client does not expose, and to pick
  the current context as kubectl does from several KUBECONFIG files (the first file that
  sets one; the client would take the last).

A :class:`KubeClient` makes its ``ApiClient`` on first use and again in a forked child
(Celery forks its pool after import), never at import time. Every call passes
``_request_timeout`` and the client does not retry, so a slow or unreachable API server
costs a call at most its timeout. Errors come out as :class:`KubeApiError` (with the HTTP
status and the Status object's reason and message; status 0 when the server could not be
reached) or :class:`KubeConfigError` (naming the service account or kubeconfig).

Relied on in ``kubernetes`` 36.0.3, checked in its source (``pyproject.toml`` pins
``>=36.0.3,<37``: 36.0.0 never sends an in-cluster token, 35.x has no ``_content_type``
and ignores a float ``_request_timeout``, 37.x needs ``python-dateutil>=3``, which
Celery's pin excludes):

- ``patch_namespaced_pod`` takes ``_content_type``: we send JSON merge patches, as before.
  Left to itself the client sends a strategic merge patch for a dict body;
- ``_request_timeout=(connect, read)`` bounds each call; ``Configuration.retries = 0``
  stops urllib3 from trying a failed connection three more times;
- ``exec`` plugins: ``status.expirationTimestamp`` is kept and the plugin runs again once
  the token is within 5 minutes of it (``EXPIRY_SKEW_PREVENTION_DELAY``); a token without
  an expiry is kept for the life of the process. A plugin that fails is only logged by the
  client, and the call goes out without credentials (HTTP 401);
- ``auth-provider`` oidc: an unexpired ``id-token`` is sent as the bearer token; an expired
  one is refreshed from the issuer and written back to the kubeconfig (as kubectl does).
  The ``gcp`` provider needs ``google-auth``, which we do not install (current GKE
  kubeconfigs use the ``gke-gcloud-auth-plugin`` exec plugin instead);
- ``tls-server-name`` becomes urllib3's ``server_hostname`` (SNI and certificate check);
- ``Configuration.proxy`` / ``no_proxy`` make a urllib3 ``ProxyManager`` (CONNECT for an
  https server) unless ``requests.utils.should_bypass_proxies`` matches the server. The
  client fills both from the environment itself, but lets ``HTTP_PROXY`` win over
  ``HTTPS_PROXY`` for an https server, so we set them as kubectl reads them:
  ``HTTPS_PROXY`` for an ``https://`` server (``HTTP_PROXY`` for ``http://``), and
  ``NO_PROXY``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes.client import ApiClient, AppsV1Api, Configuration, CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from kubernetes.config import load_kube_config
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import InClusterConfigLoader

from oasis_keda.core.kube_errors import KubeApiError, KubeConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_TIMEOUT_S = 5.0
MERGE_PATCH = "application/merge-patch+json"
KEDA_GROUP, KEDA_VERSION, SCALED_OBJECTS = "keda.sh", "v1alpha1", "scaledobjects"
#: Pod annotation the ReplicaSet reads on scale-in: pods with the lowest cost go first.
#: Workers keep their own pod's current (``worker.deletion_cost``).
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"

Json = dict[str, Any]
Configure = Callable[[Any], None]
"""Fills a ``kubernetes.client.Configuration`` (server, credentials, TLS)."""

# Errors a configuration step can raise: the client's own, a file it cannot read, a value
# of the wrong shape in the kubeconfig.
_CONFIG_ERRORS = (ConfigException, OSError, ValueError, KeyError, TypeError, yaml.YAMLError)


class KubeClient:
    """The API calls oasis-keda makes, through one ``ApiClient`` per process."""

    def __init__(
        self,
        configure: Configure,
        *,
        namespace: str,
        source: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._configure = configure
        self.namespace = namespace
        """Namespace of the context or of the service account."""
        self.source = source
        """Where the configuration comes from, for messages."""
        self.timeout_s = timeout_s
        self._env = env
        self._api: Any = None
        self._pid = 0

    def api_client(self) -> Any:
        """This process's ``kubernetes.client.ApiClient``, made on first use."""
        if self._api is None or self._pid != os.getpid():
            config = Configuration()
            try:
                self._configure(config)
            except _CONFIG_ERRORS as exc:
                raise KubeConfigError(f"{self.source}: {exc}") from exc
            config.retries = 0  # one attempt: the timeout is the whole budget of a call
            _proxy_from_env(config, os.environ if self._env is None else self._env)
            self._api, self._pid = ApiClient(config), os.getpid()
        return self._api

    # --- calls ---------------------------------------------------------------------------
    def patch_pod(self, namespace: str, name: str, patch: Json) -> None:
        """JSON merge patch (RFC 7386) of one pod."""
        with self._call(f"patch pod {namespace}/{name}") as api:
            resp = CoreV1Api(api).patch_namespaced_pod(
                name,
                namespace,
                patch,
                _content_type=MERGE_PATCH,  # the client would send a strategic merge patch
                _preload_content=False,
                _request_timeout=self._timeout(),
            )
            _json(resp)

    def list_deployments(self, namespace: str, *, label_selector: str) -> list[Json]:
        """The Deployments matching ``label_selector``, as the API server's JSON."""
        with self._call(f"list deployments in {namespace}") as api:
            resp = AppsV1Api(api).list_namespaced_deployment(
                namespace,
                label_selector=label_selector,
                _preload_content=False,
                _request_timeout=self._timeout(),
            )
            return _items(_json(resp))

    def list_scaled_objects(self, namespace: str, *, label_selector: str) -> list[Json]:
        """The KEDA ScaledObjects matching ``label_selector``."""
        with self._call(f"list scaledobjects in {namespace}") as api:
            resp = CustomObjectsApi(api).list_namespaced_custom_object(
                KEDA_GROUP,
                KEDA_VERSION,
                namespace,
                SCALED_OBJECTS,
                label_selector=label_selector,
                _preload_content=False,
                _request_timeout=self._timeout(),
            )
            return _items(_json(resp))

    def get_scaled_object(self, namespace: str, name: str) -> Json:
        """One KEDA ScaledObject."""
        with self._call(f"get scaledobject {namespace}/{name}") as api:
            resp = CustomObjectsApi(api).get_namespaced_custom_object(
                KEDA_GROUP,
                KEDA_VERSION,
                namespace,
                SCALED_OBJECTS,
                name,
                _preload_content=False,
                _request_timeout=self._timeout(),
            )
            return _json(resp)

    # --- plumbing ------------------------------------------------------------------------
    def _timeout(self) -> tuple[float, float]:
        return (self.timeout_s, self.timeout_s)  # (connect, read)

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[Any]:
        api = self.api_client()
        config = api.configuration
        insecure = not config.verify_ssl  # asked for in the kubeconfig: do not warn per call
        try:
            with warnings.catch_warnings() if insecure else contextlib.nullcontext():
                if insecure:
                    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                yield api
        except ApiException as exc:
            raise _api_error(exc, f"{what} at {config.host}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise KubeApiError(0, "Unreachable", f"{what} at {config.host}: {exc}") from exc
        except ConfigException as exc:  # credentials renewed during the call
            raise KubeConfigError(f"{self.source}: {exc}") from exc


def _json(resp: Any) -> Json:
    try:
        data = json.loads(resp.data or b"{}")
    except ValueError as exc:
        raise KubeApiError(int(resp.status), "BadResponse", "body is not JSON") from exc
    finally:
        resp.release_conn()
    if not isinstance(data, dict):
        raise KubeApiError(int(resp.status), "BadResponse", "body is not a JSON object")
    return data


def _items(listing: Json) -> list[Json]:
    items = listing.get("items") or []
    return [i for i in items if isinstance(i, dict)]


def _api_error(exc: Any, what: str) -> KubeApiError:
    """The error status of a call, with the reason and message of its Status object."""
    status = int(exc.status or 0)
    reason = str(exc.reason or "")
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
    message = ""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        reason = str(parsed.get("reason") or reason)
        message = str(parsed.get("message") or "")
    elif body:
        message = str(body)[:200]
    if status == 0:  # the client's word for "no response" (e.g. TLS failures)
        return KubeApiError(0, "Unreachable", f"{what}: {reason}")
    return KubeApiError(status, reason or "Error", f"{what}: {message or reason}")


def _proxy_from_env(config: Any, env: Mapping[str, str]) -> None:
    """HTTPS_PROXY for an https:// server (HTTP_PROXY for http://) and NO_PROXY."""

    def get(name: str) -> str | None:
        return env.get(name.upper()) or env.get(name.lower()) or None

    scheme = urllib.parse.urlsplit(str(config.host)).scheme or "https"
    proxy = get(f"{scheme}_proxy")
    if proxy and "://" not in proxy:
        proxy = f"http://{proxy}"
    config.proxy = proxy
    config.no_proxy = get("no_proxy")


# --- in a pod ----------------------------------------------------------------------------
def in_cluster(
    env: Mapping[str, str],
    *,
    root: Path = SERVICE_ACCOUNT_DIR,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> KubeClient | None:
    """The service account's client, or ``None`` outside a cluster.

    ``root`` is the service account directory (token, ca.crt, namespace); ``env`` gives
    ``KUBERNETES_SERVICE_HOST``/``PORT``. Raises :class:`KubeConfigError` for a pod whose
    service account cannot be used (no CA), ``OSError`` for unreadable files.
    """
    token = root / "token"
    if not env.get("KUBERNETES_SERVICE_HOST") or not token.is_file():
        return None
    ca = root / "ca.crt"
    if not ca.is_file():
        raise KubeConfigError(f"service account {root} has no ca.crt")
    ns_file = root / "namespace"
    namespace = ns_file.read_text().strip() if ns_file.is_file() else "default"

    def configure(config: Any) -> None:
        loader = InClusterConfigLoader(
            token_filename=str(token),
            cert_filename=str(ca),
            environ=env,
            try_refresh_token=False,  # we re-read the token before every call instead
        )
        loader.load_and_set(config)
        config.refresh_api_key_hook = functools.partial(_read_token, token)

    return KubeClient(
        configure,
        namespace=namespace,
        source=f"service account {root}",
        timeout_s=timeout_s,
        env=env,
    )


def _read_token(path: Path, config: Any) -> None:
    """Bound service account tokens rotate: read the file again for each call."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigException(f"cannot read the service account token: {exc}") from exc
    if not token:
        raise ConfigException(f"service account token file {path} is empty")
    config.api_key["BearerToken"] = f"Bearer {token}"


# --- kubeconfig --------------------------------------------------------------------------
def from_kubeconfig(
    env: Mapping[str, str],
    *,
    context: str | None = None,
    namespace: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> KubeClient:
    """The client of the current (or the named) context of ``$KUBECONFIG`` or
    ``~/.kube/config``, as kubectl picks it; ``namespace`` overrides the context's.

    Raises :class:`KubeConfigError` naming what is wrong; credentials (e.g. an ``exec``
    plugin) are used on the first call only.
    """
    docs = _kubeconfig_files(env)
    # kubectl merges KUBECONFIG files: the first file that sets current-context wins.
    ctx_name = context or next(
        (str(d["current-context"]) for _, d in docs if d.get("current-context")), ""
    )
    if not ctx_name:
        raise KubeConfigError("kubeconfig has no current-context; pass --context")
    ctx = _named(docs, "contexts", ctx_name)
    cluster = _named(docs, "clusters", str(ctx.get("cluster", "")))
    if not cluster.get("server"):
        raise KubeConfigError(f"cluster of context {ctx_name!r} has no server")
    paths = os.pathsep.join(str(path) for path, _ in docs)

    def configure(config: Any) -> None:
        load_kube_config(config_file=paths, context=ctx_name, client_configuration=config)

    return KubeClient(
        configure,
        namespace=namespace or str(ctx.get("namespace") or "default"),
        source=f"kubeconfig {paths} context {ctx_name!r}",
        timeout_s=timeout_s,
        env=env,
    )


def _kubeconfig_files(env: Mapping[str, str]) -> list[tuple[Path, Json]]:
    raw = env.get("KUBECONFIG") or str(Path(env.get("HOME", str(Path.home()))) / ".kube/config")
    docs = []
    for part in raw.split(os.pathsep):
        path = Path(part).expanduser() if part else None
        if path is None or not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise KubeConfigError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
        if data is None:
            raise KubeConfigError(f"kubeconfig {path} is empty")
        if not isinstance(data, dict):
            raise KubeConfigError(f"kubeconfig {path} is not a mapping")
        docs.append((path.resolve(), data))
    if not docs:
        raise KubeConfigError(f"no kubeconfig found (looked at {raw})")
    return docs


def _named(docs: list[tuple[Path, Json]], section: str, name: str) -> Json:
    # Across merged files the first definition of a name wins (kubectl and the client agree).
    for _, data in docs:
        for item in data.get(section) or []:
            if isinstance(item, dict) and item.get("name") == name:
                value = item.get(section[:-1]) or {}
                return value if isinstance(value, dict) else {}
    raise KubeConfigError(f"kubeconfig has no {section[:-1]} named {name!r}")
