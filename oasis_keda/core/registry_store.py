"""The model registry's lasting copy in the records database, and the Redis cache kept
equal to it.

Every component reads the registry from Redis (:mod:`oasis_keda.core.registry`). A Redis
restart without persistence (or a SIGKILL losing its last second of writes) empties or
rolls back that cache; the records database keeps the models (``RegisteredModel``) and the
registry settings (``RegistrySetting``). :func:`sync` makes the two equal, model by model,
the newer copy winning (each record carries its ``modified`` time; a deleted model leaves
a dated tombstone): a model Redis lacks or holds older is written back to it, one Redis
holds newer (the kubectl plugin writes only there) is copied into the database. Then the
primary-key counter is moved past every known key and ``keys.REGISTRY_LOADED`` is set;
until then the scaler answers UNAVAILABLE for a model it cannot find.

The controller syncs at start-up and at every janitor pass; a :class:`Registry` built
with a store writes the database right after Redis and syncs first when the mark is
missing, so that a model registered during an outage never takes a key already used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import redis
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from oasis_keda.core import keys
from oasis_keda.core.store.models import RegisteredModel, RegistrySetting

MODELS_PK_INDEX = f"{keys.MODELS}:pk"
MODELS_NEXT_PK = f"{keys.MODELS}:next-pk"
#: Where a settings change is announced (the scaler drops its all-model snapshot).
SETTINGS_CHANNEL = f"{keys.PREFIX}:activity:*settings"


def now_text() -> str:
    """A record's ``modified`` time: ISO 8601 UTC with microseconds (sorts as text)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclasses.dataclass(frozen=True)
class StoredModel:
    pk: int
    record: str
    """The record's JSON; empty for a deleted model."""
    modified: str


@dataclasses.dataclass(frozen=True)
class SyncResult:
    rebuilt: bool
    """The cache had lost its mark (a Redis restart without its data)."""
    restored: int
    """Models written back to Redis (missing there, or older there)."""
    saved: int
    """Models copied into the database (newer in Redis)."""
    dropped: int
    """Models removed from Redis (deleted since that copy was made)."""


class RegistryStore:
    """The registry's copy in the records database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def save(self, model_id: str, pk: int, record_json: str, modified: str) -> None:
        """Store a record (or, with an empty record, a deletion) as of ``modified``, unless
        the database already holds a newer one."""
        with self.sessions.begin() as session:
            # a key held by another id's tombstone may be taken again
            session.execute(
                delete(RegisteredModel).where(
                    RegisteredModel.pk == pk, RegisteredModel.model_id != model_id
                )
            )
            row = session.get(RegisteredModel, model_id)
            if row is None:
                session.add(
                    RegisteredModel(model_id=model_id, pk=pk, record=record_json, modified=modified)
                )
            elif row.modified <= modified:  # never over a newer copy (or deletion)
                row.pk, row.record, row.modified = pk, record_json, modified

    def delete(self, model_id: str, pk: int) -> None:
        self.save(model_id, pk, "", now_text())

    def models(self) -> dict[str, StoredModel]:
        """Every model id the database knows, deleted ones included."""
        with self.sessions() as session:
            rows = session.scalars(select(RegisteredModel)).all()
            return {r.model_id: StoredModel(r.pk, r.record, r.modified) for r in rows}

    def set_setting(self, name: str, value: str | None) -> None:
        with self.sessions.begin() as session:
            row = session.get(RegistrySetting, name)
            if value is None:
                if row is not None:
                    session.delete(row)
            elif row is None:
                session.add(RegistrySetting(name=name, value=value))
            else:
                row.value = value

    def settings(self) -> dict[str, str]:
        with self.sessions() as session:
            return {r.name: r.value for r in session.scalars(select(RegistrySetting)).all()}


def is_loaded(client: redis.Redis) -> bool:
    """Whether the Redis cache has been synced since Redis last lost its data."""
    return bool(client.exists(keys.REGISTRY_LOADED))


def missing_models(client: redis.Redis, store: RegistryStore) -> list[str]:
    """Registered models the database has and the Redis cache lacks."""
    cached = {_text(k) for k in client.hkeys(keys.MODELS)}
    return sorted(m for m, s in store.models().items() if s.record and m not in cached)


def _modified(raw: str) -> str:
    try:
        return str(json.loads(raw).get("modified", ""))
    except (ValueError, AttributeError):
        return ""


def _pk(raw: str) -> int | None:
    """The record's primary key; None for a record that cannot be read (left alone: the
    scaler reports it, and a sync never copies or drops it)."""
    try:
        return int(json.loads(raw)["pk"])
    except (ValueError, KeyError, TypeError):
        return None


def sync(client: redis.Redis, store: RegistryStore) -> SyncResult:
    """Make the Redis cache and the database equal (the rules are in the module's doc)."""
    with client.pipeline() as pipe:
        while True:
            try:
                return _sync_once(pipe, store)
            except redis.WatchError:  # a registry write meanwhile: read again
                continue


def _compare(
    cached: dict[str, str], stored: dict[str, StoredModel], store: RegistryStore
) -> tuple[dict[str, StoredModel], dict[str, int], int]:
    """Model by model, the newer copy wins: newer in Redis is saved to the database now;
    returned are the models to write back to Redis, those to drop from it (deleted since),
    and how many were saved."""
    back: dict[str, StoredModel] = {}
    drop: dict[str, int] = {}
    saved = 0
    for model_id in cached.keys() | stored.keys():
        raw, copy = cached.get(model_id), stored.get(model_id)
        if raw is None:
            if copy is not None and copy.record:
                back[model_id] = copy
            continue
        pk = _pk(raw)
        if pk is None:  # unreadable: left alone
            continue
        if copy is None or _modified(raw) > copy.modified:
            store.save(model_id, pk, raw, _modified(raw))
            saved += 1
        elif raw != copy.record:
            if copy.record:
                back[model_id] = copy
            else:
                drop[model_id] = pk
    return back, drop, saved


def _sync_once(pipe: redis.client.Pipeline, store: RegistryStore) -> SyncResult:
    pipe.watch(keys.MODELS, keys.REGISTRY_LOADED, keys.SETTINGS, MODELS_NEXT_PK)  # type: ignore[no-untyped-call]
    loaded = bool(pipe.exists(keys.REGISTRY_LOADED))
    cached = {_text(k): _text(v) for k, v in pipe.hgetall(keys.MODELS).items()}
    stored = store.models()
    back, drop, saved = _compare(cached, stored, store)
    limit = pipe.hget(keys.SETTINGS, keys.SETTING_GLOBAL_WORKER_LIMIT)
    settings = store.settings()
    next_pk = int(pipe.get(MODELS_NEXT_PK) or 0)
    highest = max([next_pk, *(s.pk for s in stored.values())])
    if loaded and not back and not drop and highest <= next_pk:
        pipe.unwatch()
        _keep_setting(store, settings, limit)
        return SyncResult(rebuilt=False, restored=0, saved=saved, dropped=0)
    pipe.multi()
    for model_id, copy in back.items():
        pipe.hset(keys.MODELS, model_id, copy.record)
        pipe.hset(MODELS_PK_INDEX, str(copy.pk), model_id)
        pipe.publish(keys.activity_channel(model_id), "config")
    for model_id, pk in drop.items():
        pipe.hdel(keys.MODELS, model_id)
        pipe.hdel(MODELS_PK_INDEX, str(pk))
        pipe.publish(keys.activity_channel(model_id), "deleted")
    if highest > next_pk:
        pipe.set(MODELS_NEXT_PK, highest)
    restore_settings = not loaded and limit is None and settings
    if restore_settings:
        pipe.hset(keys.SETTINGS, mapping=dict(settings))  # type: ignore[arg-type]
        pipe.publish(SETTINGS_CHANNEL, "restored")
    pipe.set(keys.REGISTRY_LOADED, "1")
    pipe.execute()
    if loaded:
        _keep_setting(store, settings, limit)
    return SyncResult(rebuilt=not loaded, restored=len(back), saved=saved, dropped=len(drop))


def _keep_setting(
    store: RegistryStore, settings: dict[str, str], limit: bytes | str | None
) -> None:
    """Redis has held the newest global worker limit all along: the database gets it."""
    value = None if limit is None else _text(limit)
    if settings.get(keys.SETTING_GLOBAL_WORKER_LIMIT) != value:
        store.set_setting(keys.SETTING_GLOBAL_WORKER_LIMIT, value)
