"""``oasis-keda manifests model`` against a real Redis registry.

Covers: the printed stream is the model's worker Deployment and ScaledObject built from its
registered scaling configuration (min/max follow a configuration change), validated
against the Kubernetes and KEDA CRD schemas; the options reach the objects; an unknown
model, bad options and an unreachable registry are clear errors (no password in them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from click.testing import CliRunner

from oasis_keda.cli import cli
from oasis_keda.core.registry import Registry

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from _keda_schema import keda_validator


def _invoke(args: list[str]) -> Any:
    return CliRunner().invoke(cli, ["manifests", "model", *args], catch_exceptions=False)


def test_prints_validated_manifests_from_the_registered_configuration(
    redis_url: str, redis_client: redis.Redis
) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    registry = Registry(redis_client)
    registry.register("PiWind")
    registry.set_scaling("PiWind", {"scaling_strategy": "QUEUE_LOAD", "worker_count_max": 7})
    result = _invoke(
        [
            "PiWind",
            "--redis-url",
            redis_url,
            "--namespace",
            "risk",
            "--image",
            "registry.example/oasis-keda:1.0",
            "--termination-grace-period",
            "1800",
            "--trigger-auth",
            "oasis-scaler-mtls",
        ]
    )
    assert result.exit_code == 0, result.output
    dep, so = list(yaml.safe_load_all(result.output))
    kv.validate(dep, "1.30", strict=True)
    assert not list(keda_validator("ScaledObject").iter_errors(so))
    assert dep["metadata"]["namespace"] == so["metadata"]["namespace"] == "risk"
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 1800
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.0")
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (0, 7)
    trigger = so["spec"]["triggers"][0]
    assert trigger["metadata"]["model"] == "PiWind"
    assert trigger["metadata"]["scalerAddress"] == "oasis-scaler.risk.svc.cluster.local:6000"
    assert trigger["authenticationRef"] == {"name": "oasis-scaler-mtls"}

    registry.set_scaling("PiWind", {"worker_count_min": 2, "worker_count_max": 3})
    again = list(yaml.safe_load_all(_invoke(["PiWind", "--redis-url", redis_url]).output))
    assert (again[1]["spec"]["minReplicaCount"], again[1]["spec"]["maxReplicaCount"]) == (2, 3)


def test_unknown_model_is_a_clear_error(redis_url: str) -> None:
    result = _invoke(["nope", "--redis-url", redis_url])
    assert result.exit_code == 1
    assert "model 'nope' is not registered" in result.output


def test_bad_options_are_refused(redis_url: str, redis_client: redis.Redis) -> None:
    Registry(redis_client).register("m")
    result = _invoke(["m", "--redis-url", redis_url, "--concurrency", "0"])
    assert result.exit_code == 2
    assert "concurrency" in result.output


def test_unreachable_registry_is_a_clear_error_without_the_password() -> None:
    result = _invoke(["m", "--redis-url", "redis://:s3cret@127.0.0.1:1/0"])
    assert result.exit_code == 1
    assert "cannot read the registry at redis://:***@127.0.0.1:1/0" in result.output
    assert "s3cret" not in result.output
