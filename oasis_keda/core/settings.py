"""Settings shared by every process, built from ``OASIS_KEDA_*`` environment variables.

Nothing here reads ``os.environ`` at import time: call :meth:`Settings.from_env` with a
mapping (tests pass a dict). CLI flags override the environment by passing keyword
arguments to :meth:`Settings.replace`.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

ENV_PREFIX = "OASIS_KEDA_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_STORAGE_DIR = Path.home() / ".local" / "share" / "oasis-keda"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Process-wide settings."""

    redis_url: str = DEFAULT_REDIS_URL
    """Broker and state store (``OASIS_KEDA_REDIS_URL``), default ``redis://127.0.0.1:6379/0``."""

    storage_dir: Path = DEFAULT_STORAGE_DIR
    """Root of analysis files (``OASIS_KEDA_STORAGE_DIR``); a shared volume in Kubernetes."""

    database_url: str = ""
    """Records database (``OASIS_KEDA_DATABASE_URL``); empty = SQLite file in storage_dir."""

    def __post_init__(self) -> None:
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"OASIS_KEDA_REDIS_URL must be a redis://, rediss:// or unix:// URL, "
                f"got {self.redis_url!r}"
            )

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.storage_dir / 'oasis-keda.sqlite3'}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Build settings from a mapping of environment variables."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is None or raw == "":
                continue
            values[field.name] = Path(raw) if field.name.endswith("_dir") else raw
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        """A copy with the given fields changed; ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def safe_url(url: str) -> str:
    """A Redis URL with its password masked, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urllib.parse.urlunsplit(parts)
