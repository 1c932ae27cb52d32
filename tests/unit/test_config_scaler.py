"""Scaler process settings and the small pure helpers around the state reader.

Covers: ScalerSettings.from_env (names, conversion, errors naming the variable), TLS flag
consistency, keyspace-notification flag merging, Celery priority lists -> priority 1-10,
the scalerMetadata ``model`` key.
"""

from __future__ import annotations

import pytest

from scaler.activity import merge_notify_flags
from scaler.errors import MetadataError
from scaler.service import model_id_from
from scaler.settings import ScalerSettings
from scaler.state import priority_from_lists


def test_from_env_reads_prefixed_variables() -> None:
    settings = ScalerSettings.from_env(
        {
            "OASIS_KEDA_REDIS_URL": "redis://r:1/2",
            "OASIS_KEDA_SCALER_PORT": "7000",
            "OASIS_KEDA_SCALER_REDIS_TIMEOUT_S": "0.5",
            "OASIS_KEDA_SCALER_HOST": "",
            "UNRELATED": "x",
        }
    )
    assert settings.redis_url == "redis://r:1/2"
    assert settings.port == 7000
    assert settings.redis_timeout_s == 0.5
    assert settings.host == "0.0.0.0"


def test_from_env_error_names_the_variable() -> None:
    with pytest.raises(ValueError, match="OASIS_KEDA_SCALER_PORT"):
        ScalerSettings.from_env({"OASIS_KEDA_SCALER_PORT": "many"})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tls_cert": "c.pem"}, "together"),
        ({"tls_client_ca": "ca.pem"}, "mTLS"),
        ({"port": 70000}, "port"),
        ({"redis_timeout_s": 0.0}, "redis_timeout_s"),
    ],
)
def test_inconsistent_settings_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScalerSettings(**fields)  # type: ignore[arg-type]


def test_replace_ignores_none() -> None:
    settings = ScalerSettings(port=1).replace(port=None, host="127.0.0.1")
    assert (settings.port, settings.host) == (1, "127.0.0.1")


@pytest.mark.parametrize(
    ("current", "expected"),
    [("", "Kghlz"), ("Ex", "EKghlxz"), ("KA", "AK"), ("Kghlz", "Kghlz")],
)
def test_notify_flags_merge(current: str, expected: str) -> None:
    assert set(merge_notify_flags(current)) == set(expected)


@pytest.mark.parametrize(
    ("by_step", "priority"),
    [
        ([0, 0, 0, 0], 0),
        ([1, 0, 0, 0], 10),
        ([0, 2, 0, 0], 7),
        ([0, 0, 1, 5], 4),
        ([0, 0, 0, 1], 1),
    ],
)
def test_priority_from_celery_lists(by_step: list[int], priority: int) -> None:
    assert priority_from_lists(by_step) == priority


def test_model_metadata_key() -> None:
    assert model_id_from({"model": " piwind-1 "}) == "piwind-1"
    for bad in ({}, {"model": ""}, {"queue": "x"}):
        with pytest.raises(MetadataError, match="model"):
            model_id_from(bad)
