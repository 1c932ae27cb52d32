"""The model registry, cached in Redis so that every component (and every scaler replica)
reads the same configuration in one round trip, and kept in the records database so that
it survives a Redis restart (:mod:`oasis_keda.core.registry_store`).

One HASH field per model holds its JSON record. Updates are optimistic transactions
(WATCH/MULTI): a configuration is validated whole before anything is written, so a refused
update leaves the stored one unchanged, and two concurrent partial updates never lose
each other's fields. A registry built with a ``store`` writes each change to the records
database right after Redis, and first rebuilds the cache if Redis has lost it. Every change
is announced on the model's activity channel so that open
StreamIsActive streams re-evaluate at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field

from oasis_keda.core import keys
from oasis_keda.core.config import (
    MAX_WORKERS,
    ChunkingConfig,
    ScalingConfig,
    _Config,
    update_config,
)
from oasis_keda.core.errors import ConfigError, ModelNotFoundError
from oasis_keda.core.registry_store import (
    MODELS_NEXT_PK,
    MODELS_PK_INDEX,
    SETTINGS_CHANNEL,
    RegistryStore,
    is_loaded,
    now_text,
    sync,
)

__all__ = ["MODELS_NEXT_PK", "MODELS_PK_INDEX", "ModelRecord", "Registry", "RegistryStore"]


def _now() -> str:
    return now_text()


class ModelRecord(BaseModel):
    """A registered model. ``model_id`` is the registry key; ``pk`` the API's integer id."""

    model_config = ConfigDict(extra="ignore")

    model_id: str
    pk: int
    queue: str
    supplier_id: str
    model_name: str
    version_id: str
    model_dir: str | None = None
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    created: str = Field(default_factory=_now)
    modified: str = Field(default_factory=_now)

    def to_json(self) -> str:
        return self.model_dump_json()

    def summary(self) -> dict[str, Any]:
        """The shape ``models show --json`` prints."""
        return self.model_dump(mode="json")


class Registry:
    """Model registry over a synchronous Redis client, and the records database if given."""

    def __init__(self, client: redis.Redis, store: RegistryStore | None = None) -> None:
        self.client = client
        self.store = store

    def _before_write(self) -> None:
        """With a store: a cache that lost its mark is rebuilt before anything is written,
        so that no primary key is handed out twice and no model is shadowed."""
        if self.store is not None and not is_loaded(self.client):
            sync(self.client, self.store)

    def register(
        self,
        model_id: str,
        *,
        queue: str | None = None,
        supplier_id: str | None = None,
        model_name: str | None = None,
        version_id: str | None = None,
        model_dir: str | None = None,
    ) -> ModelRecord:
        """Register a model, or update the metadata of a registered one (configs kept)."""
        if not model_id or not model_id.strip():
            raise ConfigError({"model_id": "must not be empty"})

        def change(current: ModelRecord | None, pipe: redis.client.Pipeline) -> ModelRecord:
            if current is None:
                pk = int(self.client.incr(MODELS_NEXT_PK))
                return ModelRecord(
                    model_id=model_id,
                    pk=pk,
                    queue=queue or keys.default_queue(model_id),
                    supplier_id=supplier_id or "",
                    model_name=model_name or model_id,
                    version_id=version_id or "",
                    model_dir=model_dir,
                )
            updates = {
                "queue": queue,
                "supplier_id": supplier_id,
                "model_name": model_name,
                "version_id": version_id,
                "model_dir": model_dir,
            }
            return current.model_copy(
                update={k: v for k, v in updates.items() if v is not None} | {"modified": _now()}
            )

        return self._transact(model_id, change, allow_missing=True)

    def get(self, model_id: str) -> ModelRecord:
        raw = self.client.hget(keys.MODELS, model_id)
        if raw is None:
            raise ModelNotFoundError(model_id)
        return ModelRecord.model_validate_json(raw)

    def get_by_pk(self, pk: int) -> ModelRecord:
        model_id = self.client.hget(MODELS_PK_INDEX, str(pk))
        if model_id is None:
            raise ModelNotFoundError(str(pk))
        return self.get(model_id.decode() if isinstance(model_id, bytes) else str(model_id))

    def list(self) -> list[ModelRecord]:
        raw = self.client.hgetall(keys.MODELS)
        records = [ModelRecord.model_validate_json(v) for v in raw.values()]
        return sorted(records, key=lambda r: r.pk)

    def delete(self, model_id: str) -> None:
        self._before_write()
        record = self.get(model_id)
        with self.client.pipeline() as pipe:
            pipe.hdel(keys.MODELS, model_id)
            pipe.hdel(MODELS_PK_INDEX, str(record.pk))
            pipe.publish(keys.activity_channel(model_id), "deleted")
            pipe.execute()
        if self.store is not None:
            self.store.delete(model_id, record.pk)

    def set_scaling(self, model_id: str, changes: Mapping[str, Any]) -> ScalingConfig:
        """Validate and store a (partial) scaling configuration; return the new whole one."""
        return self._set_config(model_id, "scaling", changes)  # type: ignore[return-value]

    def set_chunking(self, model_id: str, changes: Mapping[str, Any]) -> ChunkingConfig:
        """Validate and store a (partial) chunking configuration; return the new whole one."""
        return self._set_config(model_id, "chunking", changes)  # type: ignore[return-value]

    def _set_config(self, model_id: str, field: str, changes: Mapping[str, Any]) -> _Config:
        def change(current: ModelRecord | None, pipe: redis.client.Pipeline) -> ModelRecord:
            assert current is not None
            new = update_config(getattr(current, field), changes)
            return current.model_copy(update={field: new, "modified": _now()})

        record = self._transact(model_id, change, allow_missing=False)
        result: _Config = getattr(record, field)
        return result

    def _transact(
        self,
        model_id: str,
        change: Callable[[ModelRecord | None, redis.client.Pipeline], ModelRecord],
        *,
        allow_missing: bool,
    ) -> ModelRecord:
        self._before_write()
        record = self._transact_redis(model_id, change, allow_missing=allow_missing)
        if self.store is not None:
            self.store.save(model_id, record.pk, record.to_json(), record.modified)
        return record

    def _transact_redis(
        self,
        model_id: str,
        change: Callable[[ModelRecord | None, redis.client.Pipeline], ModelRecord],
        *,
        allow_missing: bool,
    ) -> ModelRecord:
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(keys.MODELS)  # type: ignore[no-untyped-call]
                    raw = pipe.hget(keys.MODELS, model_id)
                    if raw is None and not allow_missing:
                        raise ModelNotFoundError(model_id)
                    current = None if raw is None else ModelRecord.model_validate_json(raw)
                    record = change(current, pipe)  # may raise ConfigError: nothing written
                    pipe.multi()
                    pipe.hset(keys.MODELS, model_id, record.to_json())
                    pipe.hset(MODELS_PK_INDEX, str(record.pk), model_id)
                    pipe.publish(keys.activity_channel(model_id), "config")
                    pipe.execute()
                    return record
                except redis.WatchError:
                    continue

    def global_worker_limit(self) -> int | None:
        raw = self.client.hget(keys.SETTINGS, keys.SETTING_GLOBAL_WORKER_LIMIT)
        return None if raw is None else int(raw)

    def set_global_worker_limit(self, limit: int | None) -> None:
        """Set the cluster-wide worker cap (0 to :data:`MAX_WORKERS`); ``None`` removes it."""
        self._before_write()
        if limit is None:
            # The budget's grants go with the limit: a limit set later starts from the
            # workers that are live then.
            with self.client.pipeline() as pipe:
                pipe.hdel(keys.SETTINGS, keys.SETTING_GLOBAL_WORKER_LIMIT)
                pipe.delete(keys.BUDGET_GRANTS)
                pipe.execute()
        else:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ConfigError(
                    {"global_worker_limit": f"must be an integer >= 0, got {limit!r}"}
                )
            if limit > MAX_WORKERS:
                raise ConfigError(
                    {
                        "global_worker_limit": f"must be at most {MAX_WORKERS} "
                        f"(the most workers a model may have), got {limit}"
                    }
                )
            self.client.hset(keys.SETTINGS, keys.SETTING_GLOBAL_WORKER_LIMIT, str(limit))
        if self.store is not None:
            value = None if limit is None else str(limit)
            self.store.set_setting(keys.SETTING_GLOBAL_WORKER_LIMIT, value)
        self.client.publish(SETTINGS_CHANNEL, "global_worker_limit")
