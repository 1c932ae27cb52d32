"""Every settings dataclass read from the environment by the one shared loader.

Covers, table-driven: each variable of the shared settings, the scaler, the API, the local
autoscaler and the worker's pod settings lands in its field with the right conversion
(ints and floats as Python reads them, paths unexpanded, the API's flags, Kubernetes' own
``KUBERNETES_SERVICE_HOST``); unset and empty variables give the defaults; a value that
does not convert names the variable and the value (an ``ApiConfigError`` for the API);
the cross-field checks still run; and the loader's own rules (variable names from the
prefix or the field's metadata, nested settings, ``X | None``, a field's own parser,
``replace`` ignoring ``None``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from oasis_keda.api.errors import ApiConfigError
from oasis_keda.api.settings import ApiSettings
from oasis_keda.core.settings import (
    DEFAULT_REDIS_URL,
    DEFAULT_STORAGE_DIR,
    EnvError,
    Settings,
    env_var,
    from_env,
    parse_flag,
)
from oasis_keda.runtime.autoscaler_settings import AutoscalerSettings
from scaler.settings import ScalerSettings
from worker.deletion_cost import PodSettings

Loader = Callable[[Mapping[str, str]], Any]
LOADERS: dict[str, Loader] = {
    "core": Settings.from_env,
    "scaler": ScalerSettings.from_env,
    "api": ApiSettings.from_env,
    "autoscaler": AutoscalerSettings.from_env,
    "pod": PodSettings.from_env,
}

# (settings, variable, text, attribute path, value): every variable each parser reads.
VALID: list[tuple[str, str, str, str, object]] = [
    ("core", "OASIS_KEDA_REDIS_URL", "redis://r:1/2", "redis_url", "redis://r:1/2"),
    ("core", "OASIS_KEDA_REDIS_URL", "unix:///tmp/r.sock", "redis_url", "unix:///tmp/r.sock"),
    ("core", "OASIS_KEDA_STORAGE_DIR", "/data/oasis", "storage_dir", Path("/data/oasis")),
    ("core", "OASIS_KEDA_STORAGE_DIR", "~/rel", "storage_dir", Path("~/rel")),
    ("core", "OASIS_KEDA_DATABASE_URL", "postgresql://db/x", "database_url", "postgresql://db/x"),
    ("scaler", "OASIS_KEDA_REDIS_URL", "redis://r:1/2", "redis_url", "redis://r:1/2"),
    ("scaler", "OASIS_KEDA_SCALER_HOST", "127.0.0.1", "host", "127.0.0.1"),
    ("scaler", "OASIS_KEDA_SCALER_PORT", "7000", "port", 7000),
    ("scaler", "OASIS_KEDA_SCALER_PORT", " 7 ", "port", 7),
    ("scaler", "OASIS_KEDA_SCALER_PORT", "1_000", "port", 1000),
    ("scaler", "OASIS_KEDA_SCALER_REDIS_TIMEOUT_S", "0.5", "redis_timeout_s", 0.5),
    ("scaler", "OASIS_KEDA_SCALER_REDIS_TIMEOUT_S", "1e3", "redis_timeout_s", 1000.0),
    ("scaler", "OASIS_KEDA_SCALER_SNAPSHOT_REFRESH_S", "0", "snapshot_refresh_s", 0.0),
    ("scaler", "OASIS_KEDA_SCALER_SNAPSHOT_MAX_AGE_S", "2", "snapshot_max_age_s", 2.0),
    ("scaler", "OASIS_KEDA_SCALER_POLL_INTERVAL_S", "3", "poll_interval_s", 3.0),
    ("scaler", "OASIS_KEDA_SCALER_RECHECK_INTERVAL_S", "7.5", "recheck_interval_s", 7.5),
    ("scaler", "OASIS_KEDA_SCALER_HEALTH_INTERVAL_S", "inf", "health_interval_s", float("inf")),
    ("scaler", "OASIS_KEDA_SCALER_GRACE_S", "-1", "grace_s", -1.0),
    ("api", "OASIS_KEDA_REDIS_URL", "rediss://r", "core.redis_url", "rediss://r"),
    ("api", "OASIS_KEDA_STORAGE_DIR", "rel/dir", "core.storage_dir", Path("rel/dir")),
    ("api", "OASIS_KEDA_DATABASE_URL", "sqlite:///x", "core.database_url", "sqlite:///x"),
    ("api", "OASIS_KEDA_API_HOST", "0.0.0.0", "host", "0.0.0.0"),
    ("api", "OASIS_KEDA_API_PORT", "0", "port", 0),
    ("api", "OASIS_KEDA_API_USER", "ops", "user", "ops"),
    ("api", "OASIS_KEDA_API_PASSWORD", "$argon2id$v=19$x", "password", "$argon2id$v=19$x"),
    ("api", "OASIS_KEDA_API_SECRET", "s" * 32, "secret", "s" * 32),
    ("api", "OASIS_KEDA_API_ACCESS_TTL_S", "60", "access_ttl_s", 60),
    ("api", "OASIS_KEDA_API_REFRESH_TTL_S", "+120", "refresh_ttl_s", 120),
    ("api", "OASIS_KEDA_API_MAX_UPLOAD_BYTES", "1024", "max_upload_bytes", 1024),
    ("api", "OASIS_KEDA_LOCAL_RUNTIME", "1", "local_runtime", True),
    ("api", "OASIS_KEDA_LOCAL_RUNTIME", " Yes ", "local_runtime", True),
    ("api", "OASIS_KEDA_LOCAL_RUNTIME", "0", "local_runtime", False),
    ("api", "OASIS_KEDA_LOCAL_RUNTIME", "enabled", "local_runtime", False),
    ("api", "OASIS_KEDA_API_LOCAL_RUNTIME", "1", "local_runtime", False),  # not its name
    ("api", "OASIS_KEDA_API_INSECURE_DEFAULT_USER", "on", "insecure_default_user", True),
    ("autoscaler", "OASIS_KEDA_AUTOSCALER_POLLING_INTERVAL_S", "2", "polling_interval_s", 2),
    ("autoscaler", "OASIS_KEDA_AUTOSCALER_COOLDOWN_PERIOD_S", "0", "cooldown_period_s", 0),
    (
        "autoscaler",
        "OASIS_KEDA_AUTOSCALER_SCALE_DOWN_STABILIZATION_S",
        "300",
        "scale_down_stabilization_s",
        300,
    ),
    (
        "autoscaler",
        "OASIS_KEDA_AUTOSCALER_SCALE_UP_STABILIZATION_S",
        "30",
        "scale_up_stabilization_s",
        30,
    ),
    (
        "autoscaler",
        "OASIS_KEDA_AUTOSCALER_FALLBACK_FAILURE_THRESHOLD",
        "0",
        "fallback_failure_threshold",
        0,
    ),
    ("autoscaler", "OASIS_KEDA_AUTOSCALER_WORKER_CONCURRENCY", "4", "worker_concurrency", 4),
    ("autoscaler", "OASIS_KEDA_AUTOSCALER_GRACE_S", "30.5", "grace_s", 30.5),
    ("autoscaler", "OASIS_KEDA_AUTOSCALER_RPC_TIMEOUT_S", "2", "rpc_timeout_s", 2.0),
    ("autoscaler", "OASIS_KEDA_AUTOSCALER_REGISTRY_REFRESH_S", "0.2", "registry_refresh_s", 0.2),
    ("pod", "OASIS_KEDA_POD_NAME", "w-5d8f7-abcde", "pod_name", "w-5d8f7-abcde"),
    ("pod", "OASIS_KEDA_POD_NAMESPACE", "oasis", "pod_namespace", "oasis"),
    ("pod", "OASIS_KEDA_SERVICE_ACCOUNT_DIR", "/sa", "service_account_dir", Path("/sa")),
    ("pod", "KUBERNETES_SERVICE_HOST", "10.0.0.1", "kubernetes_service_host", "10.0.0.1"),
    ("pod", "OASIS_KEDA_KUBERNETES_SERVICE_HOST", "x", "kubernetes_service_host", ""),
]

# Every settings class's defaults, as documented on its fields.
DEFAULTS: list[tuple[str, dict[str, object]]] = [
    (
        "core",
        {"redis_url": DEFAULT_REDIS_URL, "storage_dir": DEFAULT_STORAGE_DIR, "database_url": ""},
    ),
    (
        "scaler",
        {
            "redis_url": "redis://127.0.0.1:6379/0",
            "host": "0.0.0.0",
            "port": 9090,
            "tls_cert": "",
            "tls_key": "",
            "tls_client_ca": "",
            "redis_timeout_s": 1.0,
            "snapshot_refresh_s": 0.8,
            "snapshot_max_age_s": 1.0,
            "poll_interval_s": 1.0,
            "recheck_interval_s": 5.0,
            "health_interval_s": 1.0,
            "start_allowance_s": 60.0,
            "metrics_port": 0,
            "grace_s": 5.0,
        },
    ),
    (
        "api",
        {
            "core": Settings(),
            "host": "127.0.0.1",
            "port": 8000,
            "user": "admin",
            "password": "password",
            "secret": "",
            "access_ttl_s": 3600,
            "refresh_ttl_s": 172800,
            "max_upload_bytes": 1024**3,
            "local_runtime": False,
            "insecure_default_user": False,
        },
    ),
    (
        "autoscaler",
        {
            "polling_interval_s": 1,
            "cooldown_period_s": 5,
            "scale_down_stabilization_s": 15,
            "scale_up_stabilization_s": 0,
            "fallback_failure_threshold": 3,
            "worker_concurrency": 1,
            "grace_s": 600.0,
            "rpc_timeout_s": 10.0,
            "registry_refresh_s": 1.0,
        },
    ),
    (
        "pod",
        {
            "pod_name": "",
            "pod_namespace": "",
            "service_account_dir": None,
            "kubernetes_service_host": "",
        },
    ),
]

# (settings, variable, text, error type, the whole message).
BAD: list[tuple[str, str, str, type[Exception], str]] = [
    (
        "scaler",
        "OASIS_KEDA_SCALER_PORT",
        "many",
        EnvError,
        "OASIS_KEDA_SCALER_PORT must be an integer, got 'many'",
    ),
    (
        "scaler",
        "OASIS_KEDA_SCALER_PORT",
        "2.5",
        EnvError,
        "OASIS_KEDA_SCALER_PORT must be an integer, got '2.5'",
    ),
    (
        "scaler",
        "OASIS_KEDA_SCALER_GRACE_S",
        "soon",
        EnvError,
        "OASIS_KEDA_SCALER_GRACE_S must be a number, got 'soon'",
    ),
    (
        "api",
        "OASIS_KEDA_API_PORT",
        "x",
        ApiConfigError,
        "OASIS_KEDA_API_PORT must be an integer, got 'x'",
    ),
    (
        "api",
        "OASIS_KEDA_API_ACCESS_TTL_S",
        "1h",
        ApiConfigError,
        "OASIS_KEDA_API_ACCESS_TTL_S must be an integer, got '1h'",
    ),
    (
        "autoscaler",
        "OASIS_KEDA_AUTOSCALER_COOLDOWN_PERIOD_S",
        "soon",
        EnvError,
        "OASIS_KEDA_AUTOSCALER_COOLDOWN_PERIOD_S must be an integer, got 'soon'",
    ),
    (
        "autoscaler",
        "OASIS_KEDA_AUTOSCALER_RPC_TIMEOUT_S",
        "10s",
        EnvError,
        "OASIS_KEDA_AUTOSCALER_RPC_TIMEOUT_S must be a number, got '10s'",
    ),
    # Converted, then refused by the dataclass's own checks (messages unchanged).
    (
        "core",
        "OASIS_KEDA_REDIS_URL",
        "http://x",
        ValueError,
        "OASIS_KEDA_REDIS_URL must be a redis://, rediss:// or unix:// URL, got 'http://x'",
    ),
    (
        "api",
        "OASIS_KEDA_REDIS_URL",
        "http://x",
        ValueError,
        "OASIS_KEDA_REDIS_URL must be a redis://, rediss:// or unix:// URL, got 'http://x'",
    ),
    ("scaler", "OASIS_KEDA_SCALER_PORT", "70000", ValueError, "port must be 0-65535, got 70000"),
    (
        "scaler",
        "OASIS_KEDA_SCALER_REDIS_TIMEOUT_S",
        "0",
        ValueError,
        "redis_timeout_s must be > 0, got 0.0",
    ),
    (
        "api",
        "OASIS_KEDA_API_PORT",
        "-1",
        ApiConfigError,
        "OASIS_KEDA_API_PORT must be 0..65535, got -1",
    ),
    (
        "api",
        "OASIS_KEDA_API_MAX_UPLOAD_BYTES",
        "0",
        ApiConfigError,
        "OASIS_KEDA_API_MAX_UPLOAD_BYTES must be >= 1",
    ),
    (
        "autoscaler",
        "OASIS_KEDA_AUTOSCALER_GRACE_S",
        "-1",
        ValueError,
        "autoscaler grace_s must be >= 0",
    ),
    (
        "autoscaler",
        "OASIS_KEDA_AUTOSCALER_WORKER_CONCURRENCY",
        "0",
        ValueError,
        "autoscaler polling_interval_s and worker_concurrency must be >= 1",
    ),
]


def _get(obj: object, path: str) -> object:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize(("kind", "variable", "text", "path", "value"), VALID)
def test_each_variable_lands_in_its_field(
    kind: str, variable: str, text: str, path: str, value: object
) -> None:
    got = _get(LOADERS[kind]({variable: text, "UNRELATED": "x"}), path)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("kind", "defaults"), DEFAULTS)
def test_unset_and_empty_variables_give_the_defaults(
    kind: str, defaults: dict[str, object]
) -> None:
    built = LOADERS[kind]({})
    assert dataclasses.asdict(built) == {
        k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in defaults.items()
    }
    assert built == type(built)()
    every_variable_empty = {row[1]: "" for row in VALID if row[0] == kind}
    assert LOADERS[kind](every_variable_empty) == built


@pytest.mark.parametrize(("kind", "variable", "text", "error", "message"), BAD)
def test_bad_values_are_refused_by_name(
    kind: str, variable: str, text: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        LOADERS[kind]({variable: text})
    assert str(caught.value) == message
    if isinstance(caught.value, EnvError):  # a ValueError: callers catch that, as before
        assert (caught.value.variable, caught.value.value) == (variable, text)


def test_scaler_tls_variables() -> None:
    env = {
        "OASIS_KEDA_SCALER_TLS_CERT": "/tls/server.pem",
        "OASIS_KEDA_SCALER_TLS_KEY": "/tls/server.key",
        "OASIS_KEDA_SCALER_TLS_CLIENT_CA": "/tls/ca.pem",
    }
    got = ScalerSettings.from_env(env)
    assert (got.tls_cert, got.tls_key, got.tls_client_ca) == tuple(env.values())
    with pytest.raises(ValueError, match="together"):
        ScalerSettings.from_env({"OASIS_KEDA_SCALER_TLS_CERT": "/tls/server.pem"})
    with pytest.raises(ValueError, match="mTLS"):
        ScalerSettings.from_env({"OASIS_KEDA_SCALER_TLS_CLIENT_CA": "/tls/ca.pem"})


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("true", True), ("TRUE", True), (" yes ", True), ("On", True)]
    + [("0", False), ("false", False), ("no", False), ("off", False), ("garbage", False)],
)
def test_flag_spellings(text: str, value: bool) -> None:
    assert parse_flag(text) is value


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Inner:
    depth: int = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Outer:
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    shared: _Inner = dataclasses.field(default_factory=_Inner, metadata=env_var(prefix="X_"))
    named: str = dataclasses.field(default="", metadata=env_var("ELSEWHERE"))
    tags: tuple[str, ...] = dataclasses.field(
        default=(), metadata=env_var(parse=lambda raw: tuple(raw.split(",")))
    )
    limit: float | None = None


def test_loader_rules_on_a_dataclass_of_its_own() -> None:
    env = {
        "P_INNER_DEPTH": "2",
        "X_DEPTH": "3",
        "ELSEWHERE": "e",
        "P_NAMED": "ignored",
        "P_TAGS": "a,b",
        "P_LIMIT": "0.5",
    }
    got = from_env(_Outer, env, prefix="P_")
    assert got == _Outer(
        inner=_Inner(depth=2), shared=_Inner(depth=3), named="e", tags=("a", "b"), limit=0.5
    )
    assert from_env(_Outer, {}, prefix="P_") == _Outer()
    with pytest.raises(EnvError, match=r"^X_DEPTH must be an integer, got 'deep'$"):
        from_env(_Outer, {"X_DEPTH": "deep"}, prefix="P_")


def test_a_field_type_without_parser_is_a_programming_error() -> None:
    @dataclasses.dataclass(frozen=True)
    class Odd:
        items: list[int] = dataclasses.field(default_factory=list)

    assert from_env(Odd, {}) == Odd()  # unset: never parsed
    with pytest.raises(TypeError, match="Odd.items"):
        from_env(Odd, {"OASIS_KEDA_ITEMS": "1,2"})


@pytest.mark.parametrize("kind", ["core", "scaler", "api", "autoscaler"])
def test_replace_ignores_none(kind: str) -> None:
    built = LOADERS[kind]({})
    field = next(f for f in dataclasses.fields(built) if f.type in ("str", "int", "float"))
    assert built.replace(**{field.name: None}) == built
