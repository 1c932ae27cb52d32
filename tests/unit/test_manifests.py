"""The kustomize manifests under manifests/, built without a kustomize binary.

Covers: every kustomization (base, overlays, component) resolves (resources exist, every
patch matches, JSON pointers resolve); every built object validates against the Kubernetes
schemas (kubernetes-validate, strict, oldest and newest supported versions) or, for KEDA
kinds, against the KEDA CRD schemas in ../shared/keda-crds (skipped when absent); security
contexts, resources, probes, the scaler's replicas/headless Service/PDB, Redis password
and persistence, RWX volumes, worker Deployments at 0 replicas, NetworkPolicies, the
least-privilege worker Role, the mTLS component, the committed built-in model manifests
matching the generator, and the Dockerfile's essentials.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from _keda_schema import keda_validator
from _kustomize import build, kustomization_dirs

from oasis_keda.kubectl.manifest_settings import WorkerManifestSettings
from oasis_keda.kubectl.manifests import builtin_record, model_manifests, to_yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
BUILDS = ["base", "overlays/minikube", "overlays/minikube-mtls", "overlays/minikube-metrics"]
# Oldest Kubernetes we support (gRPC probes GA in 1.27; KEDA 2.17 supports 1.30+) and newest.
K8S_VERSIONS = ["1.30", "1.37"]

Obj = dict[str, Any]


@pytest.fixture(scope="module", params=BUILDS)
def built(request: pytest.FixtureRequest) -> list[Obj]:
    return build(MANIFESTS / request.param)


def _all_objects() -> list[tuple[str, Obj]]:
    return [(b, o) for b in BUILDS for o in build(MANIFESTS / b)]


def _pod_templates(objects: list[Obj]) -> list[tuple[str, Obj]]:
    return [
        (o["metadata"]["name"], o["spec"]["template"])
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
    ]


def _containers(template: Obj) -> list[Obj]:
    spec = template["spec"]
    return list(spec.get("containers") or []) + list(spec.get("initContainers") or [])


def _by(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def test_every_kustomization_resolves() -> None:
    dirs = kustomization_dirs(MANIFESTS)
    assert {d.relative_to(MANIFESTS).as_posix() for d in dirs} >= {
        *BUILDS,
        "components/mtls",
        "components/prometheus",
    }
    for build_dir in BUILDS:
        assert build(MANIFESTS / build_dir), build_dir


def test_every_yaml_file_is_referenced_by_a_kustomization() -> None:
    referenced: set[Path] = set()
    for d in kustomization_dirs(MANIFESTS):
        k = yaml.safe_load((d / "kustomization.yaml").read_text())
        referenced.add(d / "kustomization.yaml")
        for entry in (k.get("resources") or []) + [p["path"] for p in k.get("patches") or []]:
            referenced.add((d / entry).resolve())
    stray = [p for p in MANIFESTS.rglob("*.yaml") if p.resolve() not in referenced]
    assert not stray, f"YAML files no kustomization uses: {stray}"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_objects_validate_against_schemas(version: str) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    checked = 0
    for build_dir, obj in _all_objects():
        if obj["apiVersion"].startswith("keda.sh/"):
            continue
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{build_dir}: {obj['kind']}/{obj['metadata']['name']}: {path}: {exc}")
        checked += 1
    assert checked > 20


def test_keda_objects_validate_against_crd_schemas() -> None:
    kinds = set()
    for build_dir, obj in _all_objects():
        if not obj["apiVersion"].startswith("keda.sh/"):
            continue
        validator = keda_validator(obj["kind"])
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
        assert not errors, f"{build_dir}: {obj['metadata']['name']}: {errors[0].message}"
        kinds.add(obj["kind"])
    assert kinds == {"ScaledObject", "TriggerAuthentication"}


def test_containers_are_locked_down(built: list[Obj]) -> None:
    templates = _pod_templates(built)
    assert len(templates) == 5  # redis, scaler, controller, api, built-in worker
    for name, template in templates:
        pod_sc = template["spec"].get("securityContext") or {}
        assert pod_sc.get("runAsNonRoot") is True, name
        for c in _containers(template):
            sc = c.get("securityContext") or {}
            where = f"{name}/{c['name']}"
            assert sc.get("runAsNonRoot") is True, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert "add" not in sc.get("capabilities", {}), where
            assert sc.get("privileged") in (None, False), where
            res = c.get("resources") or {}
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(section) or {}), f"{where} {section}"


def test_only_workers_mount_a_service_account_token(built: list[Obj]) -> None:
    for name, template in _pod_templates(built):
        spec = template["spec"]
        if name.startswith("oasis-worker-"):
            assert spec["serviceAccountName"] == "oasis-worker"
        else:
            assert spec.get("automountServiceAccountToken") is False, name


def test_scaler_is_two_replicas_behind_a_headless_service_with_a_pdb(built: list[Obj]) -> None:
    dep = _by(built, "Deployment", "oasis-scaler")
    assert dep["spec"]["replicas"] == 2
    labels = dep["spec"]["template"]["metadata"]["labels"]
    svc = _by(built, "Service", "oasis-scaler")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"].items() <= labels.items()
    assert [p["port"] for p in svc["spec"]["ports"]] == [6000]
    pdb = _by(built, "PodDisruptionBudget", "oasis-scaler")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] == 1


def test_scaler_probes_are_grpc_unless_tls(built: list[Obj]) -> None:
    container = _by(built, "Deployment", "oasis-scaler")["spec"]["template"]["spec"]["containers"][
        0
    ]
    tls = "--tls-cert" in container["args"]
    for probe in ("readinessProbe", "livenessProbe"):
        # Kubelet gRPC probes cannot speak TLS: with mTLS they are TCP checks.
        expected = {"tcpSocket": {"port": 6000}} if tls else {"grpc": {"port": 6000}}
        assert expected.items() <= container[probe].items(), probe


def test_redis_password_comes_from_a_secret_and_appends_every_second(built: list[Obj]) -> None:
    redis = _by(built, "Deployment", "oasis-redis")
    c = redis["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "oasis-redis",
        "key": "password",
    }
    args = c["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert args[args.index("--save") + 1] == ""
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    volumes = redis["spec"]["template"]["spec"]["volumes"]
    claim = next(v["persistentVolumeClaim"]["claimName"] for v in volumes if v["name"] == "data")
    assert _by(built, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]
    # Every component that talks to Redis takes the password from the same Secret.
    for name, template in _pod_templates(built):
        for container in template["spec"]["containers"]:
            names = {e["name"]: e for e in container.get("env") or []}
            if "OASIS_KEDA_REDIS_URL" in names:
                ref = names["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": "oasis-redis", "key": "password"}, name
                assert (
                    "$(REDIS_PASSWORD)@oasis-redis:6379" in names["OASIS_KEDA_REDIS_URL"]["value"]
                )


def test_storage_is_read_write_many_and_mounted_by_the_components(built: list[Obj]) -> None:
    pvc = _by(built, "PersistentVolumeClaim", "oasis-storage")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for name in ("oasis-api", "oasis-controller", "oasis-worker-synth"):
        volumes = _by(built, "Deployment", name)["spec"]["template"]["spec"]["volumes"]
        claims = {
            v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v
        }
        assert {"oasis-storage", "oasis-model-data"} <= claims, name


def test_worker_deployments_start_at_zero_with_a_long_grace_period(built: list[Obj]) -> None:
    workers = [
        o
        for o in built
        if o["kind"] == "Deployment" and o["metadata"]["name"].startswith("oasis-worker-")
    ]
    assert workers
    for w in workers:
        assert w["spec"]["replicas"] == 0
        assert w["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 300


def test_secrets_referenced_by_pods_exist_in_the_minikube_overlays() -> None:
    for build_dir in ("overlays/minikube", "overlays/minikube-mtls"):
        objects = build(MANIFESTS / build_dir)
        secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
        for _, template in _pod_templates(objects):
            for c in _containers(template):
                for e in c.get("env") or []:
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        assert ref["key"] in secrets[ref["name"]]["data"], ref


def test_network_policies_let_only_keda_reach_the_scaler_and_only_our_pods_reach_redis(
    built: list[Obj],
) -> None:
    policies = {o["metadata"]["name"]: o for o in built if o["kind"] == "NetworkPolicy"}
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"]
    assert "ingress" not in deny

    scaler = policies["scaler-from-keda-only"]["spec"]
    assert scaler["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "oasis-scaler"}
    [rule] = scaler["ingress"]
    [peer] = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "keda-operator"}
    assert rule["ports"] == [{"protocol": "TCP", "port": 6000}]

    redis = policies["redis-from-oasis-only"]["spec"]
    [rule] = redis["ingress"]
    [peer] = rule["from"]
    assert set(peer) == {"podSelector"}  # same namespace only
    allowed = peer["podSelector"]["matchLabels"]
    # Every pod that needs Redis carries the allowed label; no policy selects the scaler or
    # Redis except the two above.
    for name, template in _pod_templates(built):
        needs_redis = any(
            e["name"] == "OASIS_KEDA_REDIS_URL"
            for c in template["spec"]["containers"]
            for e in c.get("env") or []
        )
        if needs_redis:
            assert allowed.items() <= template["metadata"]["labels"].items(), name
    for name, policy in policies.items():
        selected = policy["spec"]["podSelector"].get("matchLabels", {})
        if name not in ("scaler-from-keda-only", "redis-from-oasis-only", "default-deny-ingress"):
            assert selected.get("app.kubernetes.io/name") not in ("oasis-scaler", "oasis-redis")


def test_worker_role_allows_exactly_patch_on_pods(built: list[Obj]) -> None:
    role = _by(built, "Role", "oasis-worker-deletion-cost")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}]
    binding = _by(built, "RoleBinding", "oasis-worker-deletion-cost")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "oasis-worker", "namespace": "oasis"}
    ]
    assert binding["roleRef"]["name"] == "oasis-worker-deletion-cost"
    assert not [o for o in built if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_builtin_model_manifests_match_the_generator() -> None:
    expected = to_yaml(model_manifests(builtin_record(), WorkerManifestSettings()))
    assert (MANIFESTS / "base/models/synth.yaml").read_text() == expected, (
        "regenerate: python -m oasis_keda.kubectl.manifests > manifests/base/models/synth.yaml"
    )


def test_mtls_overlay_wires_trigger_authentication_and_scaler_tls() -> None:
    objects = build(MANIFESTS / "overlays/minikube-mtls")
    auth = _by(objects, "TriggerAuthentication", "oasis-scaler-mtls")
    params = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert params == {
        "caCert": ("oasis-keda-client-tls", "ca.crt"),
        "tlsClientCert": ("oasis-keda-client-tls", "tls.crt"),
        "tlsClientKey": ("oasis-keda-client-tls", "tls.key"),
    }
    for so in (o for o in objects if o["kind"] == "ScaledObject"):
        assert so["spec"]["triggers"][0]["authenticationRef"] == {"name": "oasis-scaler-mtls"}
    scaler = _by(objects, "Deployment", "oasis-scaler")["spec"]["template"]["spec"]
    args = scaler["containers"][0]["args"]
    for flag in ("--tls-cert", "--tls-key", "--tls-client-ca"):
        mount = args[args.index(flag) + 1]
        assert mount.startswith("/etc/oasis-scaler/tls/")
    [tls] = [v for v in scaler["volumes"] if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == "oasis-scaler-tls"
    plain = build(MANIFESTS / "overlays/minikube")
    assert not [o for o in plain if o["kind"] == "TriggerAuthentication"]


def test_minikube_overlay_uses_the_locally_built_image() -> None:
    for _, template in _pod_templates(build(MANIFESTS / "overlays/minikube")):
        for c in _containers(template):
            if "oasis-keda" in c["image"]:
                assert c["image"] == "oasis-keda:dev"


def test_dockerfile_builds_one_non_root_image_with_a_warm_numba_cache() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["oasis-keda"]' in text
    assert "USER 10001" in text
    assert "NUMBA_CACHE_DIR=/opt/oasis-keda/numba-cache" in text
    assert "oasis-keda model synth" in text
    assert (ROOT / ".dockerignore").is_file()


def test_metrics_component_exposes_every_process_to_prometheus() -> None:
    objects = build(MANIFESTS / "overlays/minikube-metrics")
    deployments = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"]
                   != "oasis-redis"]  # fmt: skip
    assert {d["metadata"]["name"] for d in deployments} >= {
        "oasis-scaler", "oasis-controller", "oasis-api",
    }  # fmt: skip
    for d in deployments:
        template = d["spec"]["template"]
        assert template["metadata"]["annotations"]["prometheus.io/port"] == "9100", d
        (container,) = [c for c in template["spec"]["containers"] if c.get("env")][:1]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert "9100" in (env.get("OASIS_KEDA_METRICS_PORT"), env.get(
            "OASIS_KEDA_SCALER_METRICS_PORT")), d["metadata"]["name"]  # fmt: skip
    _by(objects, "NetworkPolicy", "metrics-from-monitoring")


def test_grafana_dashboard_queries_only_metrics_the_code_defines() -> None:
    import importlib
    import json
    import re

    from prometheus_client import REGISTRY

    for module in ("scaler.metrics", "task_controller.metrics", "worker.metrics",
                   "oasis_keda.api.metrics"):  # fmt: skip
        importlib.import_module(module)  # each defines its metrics on the registry

    names = {s.name for family in REGISTRY.collect() for s in family.samples} | {
        family.name for family in REGISTRY.collect()
    }
    dashboard = json.loads((MANIFESTS / "components/prometheus/grafana-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\boasis_keda_\w+", target["expr"])
    }
    assert used
    unknown = {
        n
        for n in used
        if n not in names and re.sub(r"_(bucket|sum|count|total)$", "", n) not in names
    }
    assert not unknown, unknown
