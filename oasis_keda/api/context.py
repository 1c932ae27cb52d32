"""What every route needs, built once per app: database, registry, storage, authenticator.

Routes reach it through :func:`get_ctx` (a FastAPI dependency), never through globals, so
tests can run several apps with different settings in one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import redis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from oasis_keda.api.auth import Authenticator, bearer_token, load_or_create_secret
from oasis_keda.api.errors import NotFoundError
from oasis_keda.api.settings import ApiSettings
from oasis_keda.core import keys
from oasis_keda.core.errors import ModelNotFoundError
from oasis_keda.core.model_dir import ModelDirError, read_model_dir
from oasis_keda.core.registry import ModelRecord, Registry, RegistryStore
from oasis_keda.core.storage import Storage
from oasis_keda.core.store import make_engine, make_session_factory

#: Largest id the records database stores (SQLite and PostgreSQL integers).
MAX_ID = 2**31 - 1
MODEL_SETTINGS_DIR = "model-settings"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclasses.dataclass
class ApiContext:
    settings: ApiSettings
    engine: Engine
    sessions: sessionmaker[Session]
    redis_client: redis.Redis
    registry: Registry
    storage: Storage
    auth: Authenticator

    @classmethod
    def create(cls, settings: ApiSettings) -> ApiContext:
        core = settings.core
        engine = make_engine(core.effective_database_url)
        client = redis.Redis.from_url(core.redis_url)
        secret = settings.secret or load_or_create_secret(core.storage_dir)
        sessions = make_session_factory(engine)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            redis_client=client,
            registry=Registry(client, RegistryStore(sessions)),
            storage=Storage(core.storage_dir),
            auth=Authenticator(settings, secret=secret, consume=_consumer(client)),
        )

    def close(self) -> None:
        self.redis_client.close()
        self.engine.dispose()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    # -- models -------------------------------------------------------------------------
    def model_by_pk(self, pk: int) -> ModelRecord:
        if not 1 <= pk <= MAX_ID:
            raise NotFoundError()
        try:
            return self.registry.get_by_pk(pk)
        except ModelNotFoundError:
            raise NotFoundError() from None

    def model_pk(self, model_id: str) -> int | None:
        try:
            return self.registry.get(model_id).pk
        except ModelNotFoundError:
            return None

    def model_settings_override(self, record: ModelRecord) -> Path:
        """Where model settings posted over HTTP are kept (they win over the model dir's)."""
        return self.storage.root / MODEL_SETTINGS_DIR / f"{safe_name(record.model_id)}.json"

    def model_settings(self, record: ModelRecord) -> Any | None:
        """The raw model_settings JSON: posted over HTTP, else the model directory's."""
        override = self.model_settings_override(record)
        if override.is_file():
            return json.loads(override.read_text(encoding="utf-8"))
        if record.model_dir:
            try:
                path = read_model_dir(record.model_dir).model_settings_json
                return json.loads(path.read_text(encoding="utf-8"))
            except (ModelDirError, OSError, ValueError):
                return None
        return None


def safe_name(name: str) -> str:
    """A file name safe to create: no directories, no odd characters."""
    cleaned = _UNSAFE_NAME.sub("_", PurePosixPath(name.replace("\\", "/")).name).strip("._")
    return cleaned[:200] or "data"


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def base_url(request: Request) -> str:
    return str(request.base_url)


_bearer = HTTPBearer(auto_error=False, description="JWT access token from /access_token/")


def require_user(
    request: Request,
    _credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
) -> str:
    """Dependency of every protected route: the user of a valid access token."""
    ctx = get_ctx(request)
    return ctx.auth.verify_access(bearer_token(request.headers.get("authorization")))


def check_id(pk: int) -> int:
    if not 1 <= pk <= MAX_ID:
        raise NotFoundError()
    return pk


def _consumer(client: redis.Redis) -> Callable[[str, int], bool]:
    """Records used refresh tokens in Redis (shared by every API replica)."""

    def consume(token_id: str, ttl_s: int) -> bool:
        return bool(
            client.set(f"{keys.PREFIX}:auth:used-refresh:{token_id}", "1", nx=True, ex=ttl_s)
        )

    return consume
