"""Settings shared by every process, and the one loader that builds settings from the environment.

Every process keeps its settings in a frozen dataclass: :class:`Settings` here (Redis,
storage, records database), the scaler's, the API's, the local autoscaler's and the
worker's pod settings. None of them parses the environment by hand: :func:`from_env` reads
one variable per field and converts its text by the field's type, so names, defaults,
conversions and error messages follow the same rules everywhere:

* a field ``foo_bar`` is read from ``<prefix>FOO_BAR`` unless its metadata names the
  variable (:func:`env_var`); the prefix is ``OASIS_KEDA_`` unless the caller gives another;
* an unset or empty variable leaves the field at its default;
* ``str`` is taken as is, ``int``/``float`` as Python's ``int()``/``float()`` read them
  (surrounding blanks allowed), ``Path`` as ``Path(text)`` (no ``~`` expansion), ``bool`` is
  true for ``1``, ``true``, ``yes``, ``on`` (any case, blanks ignored) and false otherwise,
  ``X | None`` as ``X``; a field may bring its own parser instead;
* a field whose type is itself a settings dataclass is filled from the same environment
  (its own prefix, from the field's metadata, else ``<prefix>FIELD_``);
* a value that does not convert raises :class:`EnvError` naming the variable and the value.
  Checks across fields stay in each dataclass's ``__post_init__``.

Nothing here reads ``os.environ`` at import time: callers pass a mapping (tests pass a
dict). CLI flags override the environment through each settings class's ``replace``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

ENV_PREFIX = "OASIS_KEDA_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_STORAGE_DIR = Path.home() / ".local" / "share" / "oasis-keda"
#: Spellings :func:`parse_flag` takes for true (after strip and lower-casing).
TRUE_SPELLINGS = frozenset({"1", "true", "yes", "on"})
#: Key of a field's :class:`EnvSpec` in ``dataclasses.field(metadata=...)``.
METADATA_KEY = "oasis_keda.env"

SettingsT = TypeVar("SettingsT", bound="DataclassInstance")


class EnvError(ValueError):
    """An environment variable's value could not be converted to its field's type."""

    def __init__(self, variable: str, value: str, problem: str) -> None:
        self.variable = variable
        self.value = value
        super().__init__(f"{variable} {problem}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """How one field is read; every part is optional (see :func:`env_var`)."""

    name: str | None = None
    parse: Callable[[str], object] | None = None
    prefix: str | None = None


def env_var(
    name: str | None = None,
    *,
    parse: Callable[[str], object] | None = None,
    prefix: str | None = None,
) -> dict[str, EnvSpec]:
    """Field metadata for :func:`from_env`: ``dataclasses.field(metadata=env_var(...))``.

    ``name`` is the variable's full name (default ``<prefix>FIELD_NAME``); ``parse`` turns
    its text into the value and raises ``ValueError("must be ...")`` when it cannot;
    ``prefix`` is, for a nested settings field, the prefix its own fields are read with.
    """
    return {METADATA_KEY: EnvSpec(name, parse, prefix)}


def parse_int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("must be an integer") from None


def parse_float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("must be a number") from None


def parse_flag(raw: str) -> bool:
    """True for the :data:`TRUE_SPELLINGS`; any other text is false (never an error)."""
    return raw.strip().lower() in TRUE_SPELLINGS


#: The parser of each field type :func:`from_env` knows without help.
PARSERS: dict[object, Callable[[str], object]] = {
    str: str,
    int: parse_int,
    float: parse_float,
    bool: parse_flag,
    Path: Path,
}


def from_env(
    cls: type[SettingsT], env: Mapping[str, str], *, prefix: str = ENV_PREFIX
) -> SettingsT:
    """An instance of the settings dataclass ``cls`` built from the variables in ``env``.

    Fields whose variable is unset or empty keep their defaults; the dataclass's own
    ``__post_init__`` checks run as usual. Raises :class:`EnvError` for a value that does
    not convert, ``TypeError`` for a field type with no parser (a programming error).
    """
    hints = typing.get_type_hints(cls)  # the real types behind string annotations
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        spec = field.metadata.get(METADATA_KEY) or EnvSpec()
        kind = _without_none(hints[field.name])
        # Nested settings read their own fields from the same environment.
        if spec.parse is None and dataclasses.is_dataclass(kind):
            nested = spec.prefix if spec.prefix is not None else f"{prefix}{field.name.upper()}_"
            values[field.name] = from_env(typing.cast(Any, kind), env, prefix=nested)
            continue
        name = spec.name or prefix + field.name.upper()
        raw = env.get(name)
        if not raw:  # unset or empty: the default
            continue
        parse = spec.parse or PARSERS.get(kind)
        if parse is None:
            raise TypeError(f"{cls.__name__}.{field.name}: no parser for {kind!r}")
        try:
            values[field.name] = parse(raw)
        except ValueError as exc:  # the parser says what it wanted ("must be ...")
            raise EnvError(name, raw, str(exc)) from None
    return cls(**values)


def _without_none(kind: Any) -> Any:
    """``X`` for ``X | None`` (an unset variable already means the default)."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return kind


def replace_given(settings: SettingsT, changes: Mapping[str, Any]) -> SettingsT:
    """A copy of ``settings`` with ``changes`` applied; ``None`` values (flag not given) are
    ignored, so a CLI passes every flag and only the given ones override the environment."""
    given = {k: v for k, v in changes.items() if v is not None}
    return dataclasses.replace(settings, **given)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Process-wide settings (variables ``OASIS_KEDA_<FIELD>``)."""

    redis_url: str = DEFAULT_REDIS_URL
    """Broker and state store (``OASIS_KEDA_REDIS_URL``), default ``redis://127.0.0.1:6379/0``;
    a ``redis://``, ``rediss://`` or ``unix://`` URL."""

    storage_dir: Path = DEFAULT_STORAGE_DIR
    """Root of analysis files (``OASIS_KEDA_STORAGE_DIR``), default
    ``~/.local/share/oasis-keda``; a shared volume in Kubernetes."""

    database_url: str = ""
    """Records database (``OASIS_KEDA_DATABASE_URL``); default empty = SQLite file in
    storage_dir."""

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
        return from_env(cls, env)  # the module's loader, not this method

    def replace(self, **changes: Any) -> Self:
        """A copy with the given fields changed; ``None`` values are ignored."""
        return replace_given(self, changes)


def safe_url(url: str) -> str:
    """A Redis URL with its password masked, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urllib.parse.urlunsplit(parts)
