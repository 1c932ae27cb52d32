"""Settings of the HTTP API process (``oasis-keda api serve``).

A frozen dataclass built by :meth:`ApiSettings.from_env` from a mapping (tests pass a dict),
grouping the shared :class:`~oasis_keda.core.settings.Settings` with what only the API needs:
where to listen, who may log in, how long tokens live and how big an upload may be.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self

from oasis_keda.api.errors import ApiConfigError
from oasis_keda.core.settings import ENV_PREFIX, Settings

DEFAULT_USER = "admin"
DEFAULT_PASSWORD = "password"
DEFAULT_PORT = 8000
DEFAULT_ACCESS_TTL_S = 3600
DEFAULT_REFRESH_TTL_S = 2 * 24 * 3600
DEFAULT_MAX_UPLOAD_BYTES = 1024 * 1024 * 1024
MIN_SECRET_BYTES = 32


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApiSettings:
    """Settings of one API process."""

    core: Settings = dataclasses.field(default_factory=Settings)
    """Redis, storage directory and records database shared with the other processes."""

    host: str = "127.0.0.1"
    """Listen address (``OASIS_KEDA_API_HOST``), default ``127.0.0.1``."""

    port: int = DEFAULT_PORT
    """Listen port (``OASIS_KEDA_API_PORT``), default 8000; 0 picks a free one."""

    user: str = DEFAULT_USER
    """Login name (``OASIS_KEDA_API_USER``), default ``admin``."""

    password: str = DEFAULT_PASSWORD
    """Password (``OASIS_KEDA_API_PASSWORD``), plain or an argon2 hash (``$argon2...``)."""

    secret: str = ""
    """JWT signing key (``OASIS_KEDA_API_SECRET``); empty = generated, kept in storage_dir."""

    access_ttl_s: int = DEFAULT_ACCESS_TTL_S
    """Access token lifetime in seconds (``OASIS_KEDA_API_ACCESS_TTL_S``), default 1 h."""

    refresh_ttl_s: int = DEFAULT_REFRESH_TTL_S
    """Refresh token lifetime in seconds (``OASIS_KEDA_API_REFRESH_TTL_S``), default 2 days."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    """Largest accepted upload (``OASIS_KEDA_API_MAX_UPLOAD_BYTES``), default 1 GiB."""

    local_runtime: bool = False
    """True under ``oasis-keda up`` (``OASIS_KEDA_LOCAL_RUNTIME=1``): default login allowed."""

    insecure_default_user: bool = False
    """Allow admin/password outside the local runtime (``--insecure-default-user``)."""

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
                raise ApiConfigError(f"{ENV_PREFIX}API_{name.upper()} must be >= 1")

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
        values: dict[str, Any] = {"core": Settings.from_env(env)}
        for field in dataclasses.fields(cls):
            if field.name == "core":
                continue
            key = ENV_PREFIX + (
                "LOCAL_RUNTIME" if field.name == "local_runtime" else "API_" + field.name.upper()
            )
            raw = env.get(key)
            if raw is None or raw == "":
                continue
            values[field.name] = _convert(key, field.type, raw)
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        """A copy with the given fields changed; ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _convert(key: str, type_name: Any, raw: str) -> Any:
    if type_name in ("int", int):
        try:
            return int(raw)
        except ValueError:
            raise ApiConfigError(f"{key} must be an integer, got {raw!r}") from None
    if type_name in ("bool", bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return raw
