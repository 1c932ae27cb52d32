"""A fake Kubernetes API server that speaks the API at the wire (HTTP + JSON).

Real sockets, real HTTP: the client code under test cannot tell it from an API server for
the calls it makes. It serves namespaced core and group resources (GET one, GET a list with
an equality ``labelSelector``, JSON merge PATCH), answers errors as ``Status`` objects,
checks the bearer token, and records every request as an RBAC attribute tuple (API group,
resource, verb, namespace, name, plus the bearer token it carried) so that tests can
compare them with a Role's rules. ``delay_s`` makes it a slow server.

Also here: certificates for it (``tls_files``) and a tiny HTTP CONNECT proxy for
loopback targets (``connect_proxy``), to check that the client honours HTTPS_PROXY.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import ipaddress
import json
import re
import select
import socket
import socketserver
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

Obj = dict[str, Any]
ROOT = Path(__file__).resolve().parents[1]

_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/namespaces/(?P<ns>[^/]+)/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?$"
)


@dataclasses.dataclass(frozen=True)
class Request:
    """One request, as RBAC sees it."""

    group: str
    resource: str
    verb: str
    namespace: str
    name: str
    content_type: str = ""
    body: Any = None
    token: str = ""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKubeAPI:
    """Objects keyed by (group, resource, namespace, name); see the module docstring."""

    def __init__(
        self,
        token: str = "test-token",
        tls: tuple[str, str] | None = None,
        client_ca: str | None = None,
    ) -> None:
        self.tokens = {token} if token else set()
        self._client_ca = client_ca
        self.objects: dict[tuple[str, str, str, str], Obj] = {}
        self.requests: list[Request] = []
        self.missing_resources: set[tuple[str, str]] = set()
        self.delay_s = 0.0
        """Seconds to wait before answering (a slow API server)."""
        self._lock = threading.Lock()
        self._tls = tls
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- store -------------------------------------------------------------------------
    def put(self, group: str, resource: str, obj: Obj) -> None:
        meta = obj["metadata"]
        with self._lock:
            self.objects[(group, resource, meta["namespace"], meta["name"])] = copy.deepcopy(obj)

    def get(self, group: str, resource: str, namespace: str, name: str) -> Obj:
        with self._lock:
            return copy.deepcopy(self.objects[(group, resource, namespace, name)])

    # --- server ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeKubeAPI:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api._handle(self, "GET")

            def do_PATCH(self) -> None:
                api._handle(self, "PATCH")

            def do_POST(self) -> None:
                api._handle(self, "POST")

            def do_DELETE(self) -> None:
                api._handle(self, "DELETE")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self._tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self._tls)
            if self._client_ca:  # client-certificate authentication
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(self._client_ca)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- protocol ----------------------------------------------------------------------
    def _send(self, h: BaseHTTPRequestHandler, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _status(self, h: BaseHTTPRequestHandler, code: int, reason: str, message: str) -> None:
        self._send(
            h,
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": reason,
                "message": message,
                "code": code,
            },
        )

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(h.path)
        auth = h.headers.get("Authorization", "")
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        if self.delay_s:
            time.sleep(self.delay_s)
        token = auth.removeprefix("Bearer ")
        if self.tokens and token not in self.tokens:
            self._status(h, 401, "Unauthorized", "Unauthorized")
            return
        m = _PATH.match(parsed.path)
        if not m:
            self._status(h, 404, "NotFound", f"the server could not find {parsed.path}")
            return
        group = "" if m["core"] else m["group"]
        resource, ns, name = m["resource"], m["ns"], m["name"] or ""
        verb = {"GET": "get" if name else "list", "PATCH": "patch"}.get(method, method.lower())
        content_type = h.headers.get("Content-Type", "")
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(
                Request(group, resource, verb, ns, name, content_type, body, token=token)
            )
        if (group, resource) in self.missing_resources:
            self._status(h, 404, "NotFound", "the server could not find the requested resource")
            return
        if verb == "list":
            query = urllib.parse.parse_qs(parsed.query)
            selector = query.get("labelSelector", [""])[0]
            self._send(h, 200, {"kind": "List", "items": self._list(group, resource, ns, selector)})
        elif verb == "get":
            self._get(h, group, resource, ns, name)
        elif verb == "patch":
            self._patch(h, group, resource, ns, name, content_type, body)
        else:
            self._status(h, 405, "MethodNotAllowed", f"{method} not supported here")

    def _list(self, group: str, resource: str, ns: str, selector: str) -> list[Obj]:
        wanted = dict(t.split("=", 1) for t in selector.split(",") if t)
        with self._lock:
            return [
                copy.deepcopy(o)
                for (g, r, n, _), o in sorted(self.objects.items())
                if (g, r, n) == (group, resource, ns)
                and wanted.items() <= (o["metadata"].get("labels") or {}).items()
            ]

    def _get(
        self, h: BaseHTTPRequestHandler, group: str, resource: str, ns: str, name: str
    ) -> None:
        with self._lock:
            obj = self.objects.get((group, resource, ns, name))
        if obj is None:
            self._status(h, 404, "NotFound", f'{resource} "{name}" not found')
        else:
            self._send(h, 200, obj)

    def _patch(
        self,
        h: BaseHTTPRequestHandler,
        group: str,
        resource: str,
        ns: str,
        name: str,
        content_type: str,
        body: Any,
    ) -> None:
        if content_type != "application/merge-patch+json":
            self._status(h, 415, "UnsupportedMediaType", f"unsupported {content_type}")
            return
        key = (group, resource, ns, name)
        with self._lock:
            obj = self.objects.get(key)
            if obj is not None:
                obj = self.objects[key] = merge_patch(obj, body)
        if obj is None:
            self._status(h, 404, "NotFound", f'{resource} "{name}" not found')
        else:
            self._send(h, 200, obj)


@contextlib.contextmanager
def fake_kube_api(**kwargs: Any) -> Iterator[FakeKubeAPI]:
    api = FakeKubeAPI(**kwargs).start()
    try:
        yield api
    finally:
        api.stop()


def role_rules(name: str, path: Path = ROOT / "manifests/base/rbac.yaml") -> list[Obj]:
    """The rules of the Role ``name`` as committed in the manifests."""
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc["kind"] == "Role" and doc["metadata"]["name"] == name:
            rules: list[Obj] = doc["rules"]
            return rules
    raise KeyError(name)


def allowed(rules: list[Obj], req: Request) -> bool:
    """Whether RBAC ``rules`` allow the request (no wildcards in our Roles)."""
    return any(
        req.group in r["apiGroups"]
        and req.resource in r["resources"]
        and req.verb in r["verbs"]
        and (not r.get("resourceNames") or req.name in r["resourceNames"])
        for r in rules
    )


def granted(rules: list[Obj]) -> set[tuple[str, str, str]]:
    """Every (group, resource, verb) the rules grant."""
    return {
        (g, res, v)
        for r in rules
        for g in r["apiGroups"]
        for res in r["resources"]
        for v in r["verbs"]
    }


def used(requests: list[Request]) -> set[tuple[str, str, str]]:
    return {(r.group, r.resource, r.verb) for r in requests}


def tls_files(tmp: Path, *, dns_names: Sequence[str] = ()) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate signed by it (also usable as a client certificate):
    ``(ca.crt, tls.crt, tls.key)`` under ``tmp``. The certificate is for 127.0.0.1, or
    only for ``dns_names`` when given."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test-ca"))
        .issuer_name(name("test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("kubernetes"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in dns_names]
                or [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = tmp / "ca.crt", tmp / "tls.crt", tmp / "tls.key"
    ca_file.write_bytes(ca.public_bytes(pem))
    cert_file.write_bytes(cert.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, cert_file, key_file


class ConnectProxy:
    """An HTTP proxy that only tunnels (CONNECT) to loopback ports; records each target."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ConnectProxy:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                client: socket.socket = self.request
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 8192:
                    chunk = client.recv(1)  # byte by byte: nothing past the header is read
                    if not chunk:
                        return
                    head += chunk
                method, target = head.split(b" ", 2)[:2]
                host, _, port = target.decode().rpartition(":")
                if method != b"CONNECT" or host != "127.0.0.1":
                    client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                    return
                proxy.targets.append(target.decode())
                with socket.create_connection((host, int(port)), timeout=10) as upstream:
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    _relay(client, upstream)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _relay(a: socket.socket, b: socket.socket, idle_s: float = 10.0) -> None:
    while True:
        ready, _, _ = select.select([a, b], [], [], idle_s)
        if not ready:
            return
        for src in ready:
            data = src.recv(65536)
            if not data:
                return
            (b if src is a else a).sendall(data)


@contextlib.contextmanager
def connect_proxy() -> Iterator[ConnectProxy]:
    proxy = ConnectProxy().start()
    try:
        yield proxy
    finally:
        proxy.stop()
