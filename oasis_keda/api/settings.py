"""Settings of the HTTP API process (``oasis-keda api serve``).

A frozen dataclass built by :meth:`ApiSettings.from_env` from a mapping (tests pass a dict),
grouping the shared :class:`~oasis_keda.core.settings.Settings` with what only the API needs:
where to listen, who may log in, how long tokens live and how big an upload may be. The
shared loader (:func:`oasis_keda.core.settings.from_env`) reads each field ``foo`` from
``OASIS_KEDA_API_FOO``, the shared settings from their own ``OASIS_KEDA_*`` variables and
``local_runtime`` from ``OASIS_KEDA_LOCAL_RUNTIME``. A value that does not convert, or
that the API refuses, is an :class:`~oasis_keda.api.errors.ApiConfigError` naming the
variable (a bad shared value, such as the Redis URL, stays the shared ``ValueError``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self

from oasis_keda.api.errors import ApiConfigError
from oasis_keda.core.settings import (
    ENV_PREFIX,
    EnvError,
    Settings,
    env_var,
    from_env,
    replace_given,
)

DEFAULT_USER = "admin"
DEFAULT_PASSWORD = "password"
DEFAULT_PORT = 8000
DEFAULT_ACCESS_TTL_S = 3600
DEFAULT_REFRESH_TTL_S = 2 * 24 * 3600
DEFAULT_MAX_UPLOAD_BYTES = 1024 * 1024 * 1024
MIN_SECRET_BYTES = 32
#: Prefix of the API's own variables.
API_ENV_PREFIX = f"{ENV_PREFIX}API_"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApiSettings:
    """Settings of one API process (variables ``OASIS_KEDA_API_<FIELD>``)."""

    core: Settings = dataclasses.field(
        default_factory=Settings, metadata=env_var(prefix=ENV_PREFIX)
    )
    """Redis, storage directory and records database shared with the other processes
    (``OASIS_KEDA_REDIS_URL``, ``_STORAGE_DIR``, ``_DATABASE_URL``)."""

    host: str = "127.0.0.1"
    """Listen address (``OASIS_KEDA_API_HOST``), default ``127.0.0.1``."""

    port: int = DEFAULT_PORT
    """Listen port (``OASIS_KEDA_API_PORT``), default 8000; 0 picks a free one."""

    user: str = DEFAULT_USER
    """Login name (``OASIS_KEDA_API_USER``), default ``admin``."""

    password: str = DEFAULT_PASSWORD
    """Password (``OASIS_KEDA_API_PASSWORD``), default ``password``; plain or an argon2
    hash (``$argon2...``)."""

    secret: str = ""
    """JWT signing key (``OASIS_KEDA_API_SECRET``), at least 32 bytes; default empty =
    generated, kept in storage_dir."""

    access_ttl_s: int = DEFAULT_ACCESS_TTL_S
    """Access token lifetime in seconds (``OASIS_KEDA_API_ACCESS_TTL_S``), default 1 h."""

    refresh_ttl_s: int = DEFAULT_REFRESH_TTL_S
    """Refresh token lifetime in seconds (``OASIS_KEDA_API_REFRESH_TTL_S``), default 2 days."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    """Largest accepted upload (``OASIS_KEDA_API_MAX_UPLOAD_BYTES``), default 1 GiB."""

    local_runtime: bool = dataclasses.field(
        default=False, metadata=env_var(f"{ENV_PREFIX}LOCAL_RUNTIME")
    )
    """True under ``oasis-keda up`` (``OASIS_KEDA_LOCAL_RUNTIME=1``): default login allowed.
    Default false; a flag (``1``/``true``/``yes``/``on`` = true, anything else false)."""

    insecure_default_user: bool = False
    """Allow admin/password outside the local runtime (``--insecure-default-user``, or the
    flag ``OASIS_KEDA_API_INSECURE_DEFAULT_USER``), default false."""

    def __post_init__(self) -> None:
        if not self.user:
            raise ApiConfigError("OASIS_KEDA_API_USER must not be empty")
        if not self.password:
            raise ApiConfigError("OASIS_KEDA_API_PASSWORD must not be empty")
        if self.secret and len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ApiConfigError(
                f"OASIS_KEDA_API_SECRET must be at least {MIN_SECRET_BYTES} bytes long "
                "(HMAC-SHA256 signing key); leave it unset to have one generated"
            )
        if not 0 <= self.port <= 65535:
            raise ApiConfigError(f"OASIS_KEDA_API_PORT must be 0..65535, got {self.port}")
        for name in ("access_ttl_s", "refresh_ttl_s", "max_upload_bytes"):
            if getattr(self, name) < 1:
                raise ApiConfigError(f"{API_ENV_PREFIX}{name.upper()} must be >= 1")

    @property
    def uses_default_credentials(self) -> bool:
        return self.user == DEFAULT_USER and self.password == DEFAULT_PASSWORD

    def check_credentials_allowed(self) -> None:
        """Refuse the well-known admin/password login outside the local runtime."""
        if self.uses_default_credentials and not (self.local_runtime or self.insecure_default_user):
            raise ApiConfigError(
                "refusing to serve with the default login admin/password outside the local "
                "runtime: set OASIS_KEDA_API_USER and OASIS_KEDA_API_PASSWORD, or pass "
                "--insecure-default-user"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Build settings from a mapping of environment variables."""
        try:
            return from_env(cls, env, prefix=API_ENV_PREFIX)
        except EnvError as exc:  # a bad API value is a configuration error like the others
            raise ApiConfigError(str(exc)) from None

    def replace(self, **changes: Any) -> Self:
        """A copy with the given fields changed; ``None`` values are ignored."""
        return replace_given(self, changes)
