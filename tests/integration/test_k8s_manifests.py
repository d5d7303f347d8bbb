"""The Kubernetes manifests (k8s/) and the image's Dockerfile (docker/), checked offline.

Every kustomization is rendered by real kustomize (a `kustomize` binary if there is one, else
the copy built into `kubectl kustomize`), each rendered object is validated against the
Kubernetes JSON schemas (kubernetes-validate, strict: unknown fields are errors), and the whole
render is held to the hardening rules in `manifest_violations`. The negative tests break a copy
of k8s/ (or of the Dockerfile) in one place each and show that the matching check fails.

The PyTorchJob is a custom resource that kubernetes-validate has no schema for: its own fields
are checked against `PYTORCHJOB_SCHEMA` (the subset of kubeflow.org/v1 this project uses, strict)
and each replica's pod template is validated as a core v1 PodTemplate.

What the containers do when they run (their commands, the ConfigMap and Secret wiring, the
Feast variant, the shared volumes) is test_k8s_execute.py's: it executes the production
overlay's containers. What stays here is what running them cannot show: security contexts,
schemas, NetworkPolicies, probes, replicas and autoscaling, pinned images, secrets kept out of
the repository, and the Dockerfile.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kv

from tests.support.kustomize import Obj, RenderError, find, ident, render

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "k8s"
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / "docker" / "Dockerfile.dockerignore"

KUSTOMIZATIONS = ("base", "overlays/local", "overlays/production")
# The oldest Kubernetes minor we support and a current one.
K8S_VERSIONS = ("1.30.0", "1.33.0")

APP_IMAGE = "ghcr.io/example/aitm"
SERVING_IMAGE = "ghcr.io/example/aitm-serving"  # the containerized bento (serving/bentofile.yaml)
PRODUCTION_TAG = "0.1.0"
APP_UID = 10001
REDIS_UID = 999  # the official redis alpine image's own user
POSTGRES_UID = 70  # the official postgres alpine image's own user
# (kind/name/container) allowed a writable root filesystem. None needs one today: every
# container gets emptyDirs for /tmp and its home instead.
WRITABLE_ROOT_FS: frozenset[str] = frozenset()


# ---------------------------------------------------------------------------------------------
# Rendering (tests.support.kustomize: real kustomize, or `kubectl kustomize`)


@functools.cache
def _render_repo(name: str) -> tuple[Obj, ...]:
    return tuple(render(K8S_DIR / name))


def rendered(name: str) -> list[Obj]:
    return list(_render_repo(name))


# ---------------------------------------------------------------------------------------------
# Walking pod specs


def pod_templates(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """(where, pod template) for every pod template a workload object carries."""
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        yield ident(obj), spec["template"]
    elif kind == "CronJob":
        yield ident(obj), spec["jobTemplate"]["spec"]["template"]
    elif kind == "PyTorchJob":
        for rtype, replica in spec["pytorchReplicaSpecs"].items():
            yield f"{ident(obj)}/{rtype}", replica["template"]


def _has_containers(node: Any) -> bool:
    if isinstance(node, dict):
        return "containers" in node or any(_has_containers(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_containers(v) for v in node)
    return False


def containers(pod_spec: Obj) -> Iterator[Obj]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod_spec.get(key, [])


def env_value(container: Obj, name: str) -> Obj:
    matches = [e for e in container.get("env", []) if e["name"] == name]
    assert len(matches) == 1, f"container {container['name']}: expected one env {name}"
    return matches[0]


APP_IMAGES = {APP_IMAGE, "aitm", SERVING_IMAGE, "aitm-serving"}  # the local overlay's names too


def is_app_image(image: str) -> bool:
    return image.split("@")[0].rsplit(":", 1)[0] in APP_IMAGES


# ---------------------------------------------------------------------------------------------
# The rules


def _container_violations(where: str, pod_spec: Obj, c: Obj) -> list[str]:
    out = []
    name = f"{where}/{c['name']}"
    pod_sc, sc = pod_spec.get("securityContext", {}), c.get("securityContext", {})

    def effective(field: str) -> Any:
        return sc.get(field, pod_sc.get(field))

    if effective("runAsNonRoot") is not True:
        out.append(f"{name}: runAsNonRoot is not true")
    uid = effective("runAsUser")
    expected_uid = APP_UID if is_app_image(c["image"]) else None
    if uid in (None, 0) or (expected_uid is not None and uid != expected_uid):
        out.append(f"{name}: runAsUser is {uid!r}, expected a non-root uid ({expected_uid})")
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append(f"{name}: allowPrivilegeEscalation is not false")
    if sc.get("privileged"):
        out.append(f"{name}: privileged")
    if sc.get("readOnlyRootFilesystem") is not True and name not in WRITABLE_ROOT_FS:
        out.append(f"{name}: readOnlyRootFilesystem is not true")
    caps = sc.get("capabilities", {})
    if "ALL" not in caps.get("drop", []) or caps.get("add"):
        out.append(f"{name}: capabilities must drop ALL and add none")
    if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
        out.append(f"{name}: seccompProfile is not RuntimeDefault")
    resources = c.get("resources", {})
    for bound in ("requests", "limits"):
        missing = {"cpu", "memory"} - set(resources.get(bound, {}))
        if missing:
            out.append(f"{name}: resources.{bound} lacks {sorted(missing)}")
    image = c["image"]
    tag = image.split("@")[0].rsplit("/", 1)[-1].partition(":")[2]
    if "@sha256:" not in image and (not tag or tag == "latest"):
        out.append(f"{name}: image {image!r} is not pinned to a tag or digest")
    return out


def _probe_path(container: Obj, probe: str) -> tuple[str | None, Any]:
    get = container.get(probe, {}).get("httpGet", {})
    port = get.get("port")
    for p in container.get("ports", []):
        if port == p.get("name"):
            port = p["containerPort"]
    return get.get("path"), port


def manifest_violations(objects: list[Obj]) -> list[str]:
    """Every way a rendered stack breaks the project's rules; empty when it keeps them all."""
    out: list[str] = []
    known = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "PyTorchJob"}
    for obj in objects:
        if obj["kind"] == "Secret":
            out.append(
                f"{ident(obj)}: a Secret is rendered from the repository; create it out of band"
            )
        if obj["kind"] not in known and obj["kind"] != "Pod" and _has_containers(obj):
            out.append(f"{ident(obj)}: a workload kind these checks do not walk")
        if obj["kind"] == "Pod":
            out.append(f"{ident(obj)}: a bare Pod; use a controller")
        for where, template in pod_templates(obj):
            spec = template["spec"]
            for host in ("hostNetwork", "hostPID", "hostIPC"):
                if spec.get(host):
                    out.append(f"{where}: {host}")
            if spec.get("automountServiceAccountToken") is not False:
                out.append(f"{where}: automountServiceAccountToken is not false")
            for c in containers(spec):
                out.extend(_container_violations(where, spec, c))

    serving = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "aitm-serving"
    ]
    if len(serving) != 1:
        out.append("Deployment/aitm-serving: missing")
    else:
        template = serving[0]["spec"]["template"]
        (c,) = [c for c in template["spec"]["containers"] if c["name"] == "serving"]
        if _probe_path(c, "livenessProbe") != ("/livez", 3000):
            out.append("Deployment/aitm-serving: livenessProbe is not GET /livez on 3000")
        if _probe_path(c, "readinessProbe") != ("/readyz", 3000):
            out.append("Deployment/aitm-serving: readinessProbe is not GET /readyz on 3000")
        annotations = template["metadata"].get("annotations", {})
        wanted = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "3000",
            "prometheus.io/path": "/metrics",
        }
        if any(annotations.get(k) != v for k, v in wanted.items()):
            out.append("Deployment/aitm-serving: Prometheus scrape annotations missing")
    hpas = [
        o
        for o in objects
        if o["kind"] == "HorizontalPodAutoscaler"
        and o["spec"]["scaleTargetRef"]["name"] == "aitm-serving"
    ]
    if len(hpas) != 1 or hpas[0]["apiVersion"] != "autoscaling/v2":
        out.append("HorizontalPodAutoscaler (autoscaling/v2) for aitm-serving: missing")

    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny:
        out.append("NetworkPolicy: no default-deny policy for ingress and egress")
    return out


def training_violations(objects: list[Obj]) -> list[str]:
    """The torchrun world size (WORLD) on every training pod must equal the total replicas."""
    out = []
    for job in (o for o in objects if o["kind"] == "PyTorchJob"):
        replicas = job["spec"]["pytorchReplicaSpecs"]
        total = sum(r["replicas"] for r in replicas.values())
        for rtype, r in replicas.items():
            (c,) = [c for c in r["template"]["spec"]["containers"] if c["name"] == "pytorch"]
            world = int(env_value(c, "WORLD")["value"])
            if world != total:
                out.append(f"{ident(job)}/{rtype}: WORLD={world} but {total} replicas in all")
    return out


# ---------------------------------------------------------------------------------------------
# Schemas

_REPLICA = {
    "type": "object",
    "required": ["replicas", "template"],
    "additionalProperties": False,
    "properties": {
        "replicas": {"type": "integer", "minimum": 1},
        "restartPolicy": {"enum": ["Always", "OnFailure", "Never", "ExitCode"]},
        "template": {"type": "object"},  # validated as a core PodTemplate below
    },
}
PYTORCHJOB_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kubeflow.org/v1"},
        "kind": {"const": "PyTorchJob"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["pytorchReplicaSpecs"],
            "additionalProperties": False,
            "properties": {
                "nprocPerNode": {"type": "string"},
                "runPolicy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "cleanPodPolicy": {"enum": ["All", "Running", "None"]},
                        "backoffLimit": {"type": "integer", "minimum": 0},
                        "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                        "activeDeadlineSeconds": {"type": "integer", "minimum": 0},
                        "suspend": {"type": "boolean"},
                    },
                },
                "pytorchReplicaSpecs": {
                    "type": "object",
                    "required": ["Master"],
                    "additionalProperties": False,
                    "properties": {
                        "Master": {"allOf": [_REPLICA, {"properties": {"replicas": {"const": 1}}}]},
                        "Worker": _REPLICA,
                    },
                },
            },
        },
    },
}


def validate(obj: Obj, version: str) -> None:
    """Raise if `obj` does not match its schema for Kubernetes `version`."""
    if obj["apiVersion"].startswith("kubeflow.org/"):
        jsonschema.Draft202012Validator(PYTORCHJOB_SCHEMA).validate(obj)
        for where, template in pod_templates(obj):
            as_core = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": where.rsplit("/", 1)[-1].lower()},
                "template": template,
            }
            kv.validate(as_core, version, strict=True)
        return
    kv.validate(obj, version, strict=True)  # SchemaNotFoundError for a kind we do not expect


# ---------------------------------------------------------------------------------------------
# The rendered stacks


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_object_matches_its_schema(name: str, version: str) -> None:
    objects = rendered(name)
    assert objects, f"{name} rendered nothing"
    for obj in objects:
        try:
            validate(obj, version)
        except (jsonschema.ValidationError, kv.SchemaNotFoundError) as e:
            pytest.fail(f"{name}: {ident(obj)} does not validate against {version}: {e}")


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_stack_is_hardened(name: str) -> None:
    assert manifest_violations(rendered(name)) == []


# Every workload kind the stack renders; a Job would be walked the same way (see below).
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "CronJob", "PyTorchJob"}


def container_hardening(pod_spec: Obj, c: Obj) -> dict[str, bool]:
    """The hardening properties of one container, each True when it holds."""
    pod_sc, sc = pod_spec.get("securityContext", {}), c.get("securityContext", {})
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    limits = c.get("resources", {}).get("limits", {})
    return {
        "non-root": sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True
        and uid not in (None, 0),
        "read-only root filesystem": sc.get("readOnlyRootFilesystem") is True,
        "drops ALL capabilities, adds none": "ALL" in sc.get("capabilities", {}).get("drop", [])
        and not sc.get("capabilities", {}).get("add"),
        "no privilege escalation": sc.get("allowPrivilegeEscalation") is False
        and not sc.get("privileged"),
        "cpu and memory limits": {"cpu", "memory"} <= set(limits),
    }


def hardening_table(objects: list[Obj]) -> dict[str, dict[str, bool]]:
    """{kind/name[/replica]/container: properties} for every container of every workload."""
    return {
        f"{where}/{c['name']}": container_hardening(template["spec"], c)
        for obj in objects
        for where, template in pod_templates(obj)
        for c in containers(template["spec"])
    }


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_container_of_every_workload_is_hardened(name: str) -> None:
    objects = rendered(name)
    walked = {o["kind"] for o in objects if any(True for _ in pod_templates(o))}
    assert walked == WORKLOAD_KINDS, "a workload kind appeared or vanished: review the checks"
    table = hardening_table(objects)
    # serving, evidently-ui, redis, monitoring, materialize, training Master and Worker
    assert len(table) >= 7, sorted(table)
    failing = {where: [k for k, ok in props.items() if not ok] for where, props in table.items()}
    assert {where: bad for where, bad in failing.items() if bad} == {}


def test_a_job_is_walked_and_held_to_the_same_rules(broken_k8s: Path) -> None:
    """A plain Job (none today) gets no pass: its containers are checked like any other."""
    (broken_k8s / "base/job.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: backfill\nspec:\n  template:\n"
        "    spec:\n      restartPolicy: Never\n      containers:\n"
        "        - name: backfill\n          image: ghcr.io/example/aitm:0.1.0\n"
    )
    _edit(
        broken_k8s / "base/kustomization.yaml",
        "  - namespace.yaml\n",
        "  - namespace.yaml\n  - job.yaml\n",
    )
    table = hardening_table(render(broken_k8s / "overlays/local"))
    assert not any(table["Job/backfill/backfill"].values()), table["Job/backfill/backfill"]
    assert "Job/backfill/backfill: runAsNonRoot is not true" in manifest_violations(
        render(broken_k8s / "overlays/local")
    )


def _named_port(objects: list[Obj], labels: dict[str, str], port: Any) -> Any:
    """A Service's targetPort as a number, looked up in the containers of the pods it selects."""
    if isinstance(port, int):
        return port
    for obj in objects:
        for _, template in pod_templates(obj):
            if _selects({"matchLabels": labels}, template["metadata"]["labels"]):
                for c in containers(template["spec"]):
                    for p in c.get("ports", []):
                        if p.get("name") == port:
                            return p["containerPort"]
    return port


def network_policy_violations(objects: list[Obj]) -> list[str]:
    """NetworkPolicies allow only named traffic: every rule names its peers (no rule open to
    all sources or destinations, no 0.0.0.0/0), names its ports unless it only links a workload's
    own pods to each other, and every Service's port is reachable through some ingress rule."""
    out = []
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    for policy in policies:
        spec = policy["spec"]
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(spec.get(direction, [])):
                where = f"{ident(policy)} {direction}[{i}]"
                peers = rule.get(peers_key) or []
                if not peers:
                    out.append(f"{where}: no `{peers_key}`, so it allows every peer")
                for peer in peers:
                    cidr = peer.get("ipBlock", {}).get("cidr")
                    if cidr in {"0.0.0.0/0", "::/0"}:
                        out.append(f"{where}: ipBlock {cidr} allows the whole internet")
                    if peer == {"podSelector": {}} and not rule.get("ports"):
                        out.append(f"{where}: every pod of the namespace on every port")
                own_pods = all(
                    set(peer) == {"podSelector"} and peer["podSelector"] == spec["podSelector"]
                    for peer in peers
                )
                if not rule.get("ports") and not (peers and own_pods):
                    out.append(f"{where}: no `ports`, so it allows every port")
    for svc in (o for o in objects if o["kind"] == "Service"):
        labels = svc["spec"]["selector"]
        for port in svc["spec"]["ports"]:
            number = _named_port(objects, labels, port.get("targetPort", port["port"]))
            allowed = any(
                _selects(p["spec"]["podSelector"], labels)
                and any(
                    number in {q.get("port") for q in rule.get("ports", [])}
                    for rule in p["spec"].get("ingress", [])
                )
                for p in policies
            )
            if not allowed:
                out.append(f"{ident(svc)}: port {number} is not allowed by any ingress policy")
    return out


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_network_policies_allow_only_named_traffic(name: str) -> None:
    assert network_policy_violations(rendered(name)) == []


NETWORK_BREAKS = {
    "open ingress": (
        "        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: "
        "aitm-serving\n        - podSelector:\n            matchLabels:\n              "
        "app.kubernetes.io/name: feast-materialize\n      ports:\n        - protocol: TCP\n"
        "          port: 6379\n",
        "      ports:\n        - protocol: TCP\n          port: 6379\n",
        "NetworkPolicy/redis-ingress ingress[0]: no `from`",
    ),
    "any port": (
        "      ports:\n        - protocol: TCP\n          port: 8000\n",
        "",
        "NetworkPolicy/evidently-ui-ingress ingress[0]: no `ports`",
    ),
    "wrong port": (
        "          port: 3000\n",
        "          port: 3001\n",
        "Service/aitm-serving: port 3000 is not allowed",
    ),
    "internet egress": (
        "  egress:\n    - to:\n        - podSelector:\n            matchLabels:\n"
        "              app.kubernetes.io/name: redis\n",
        "  egress:\n    - to:\n        - ipBlock:\n            cidr: 0.0.0.0/0\n",
        "NetworkPolicy/redis-clients-egress egress[0]: ipBlock 0.0.0.0/0",
    ),
}


@pytest.mark.parametrize("case", sorted(NETWORK_BREAKS))
def test_network_policy_check_catches_a_broken_copy(case: str, broken_k8s: Path) -> None:
    old, new, expected = NETWORK_BREAKS[case]
    _edit(broken_k8s / "base/networkpolicies.yaml", old, new)
    violations = network_policy_violations(render(broken_k8s / "overlays/local"))
    assert any(expected in v for v in violations), violations


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_training_world_size_matches_replicas(name: str) -> None:
    assert training_violations(rendered(name)) == []


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_object_is_in_the_namespace_and_labelled(name: str) -> None:
    for obj in rendered(name):
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            assert meta["name"] == "aitm"
            assert meta["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        else:
            assert meta.get("namespace") == "aitm", ident(obj)
        assert meta["labels"]["app.kubernetes.io/part-of"] == "aitm", ident(obj)


def _pod_label_sets(objects: list[Obj]) -> list[dict[str, str]]:
    return [t["metadata"]["labels"] for o in objects for _, t in pod_templates(o)]


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", "only `In` is used here"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_selectors_and_references_resolve(name: str) -> None:
    objects = rendered(name)
    labels = _pod_label_sets(objects)
    for svc in (o for o in objects if o["kind"] == "Service"):
        assert any(_selects({"matchLabels": svc["spec"]["selector"]}, lb) for lb in labels), ident(
            svc
        )
    for pol in (o for o in objects if o["kind"] == "NetworkPolicy"):
        selectors = [pol["spec"]["podSelector"]]
        for rule in pol["spec"].get("ingress", []) + pol["spec"].get("egress", []):
            peers = rule.get("from", []) + rule.get("to", [])
            selectors += [
                p["podSelector"]
                for p in peers
                if "podSelector" in p and "namespaceSelector" not in p
            ]
        for sel in selectors:
            if sel:
                assert any(_selects(sel, lb) for lb in labels), (
                    f"{ident(pol)}: {sel} selects no pod"
                )
    claims = {o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
    config_maps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    for obj in objects:
        for where, template in pod_templates(obj):
            spec = template["spec"]
            for vol in spec.get("volumes", []):
                if "persistentVolumeClaim" in vol:
                    assert vol["persistentVolumeClaim"]["claimName"] in claims, where
            for c in containers(spec):
                for src in c.get("envFrom", []):
                    assert src["configMapRef"]["name"] in config_maps, where
                for env in c.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:  # the Secret is created out of band; keep to the documented one
                        assert (ref["name"], ref["key"]) in {
                            ("aitm-redis", "password"),
                            ("aitm-redis", "connection-string"),
                            ("aitm-feast-registry", "password"),
                            ("aitm-feast-registry", "url"),
                        }, where
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        find(objects, hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])
    for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        assert any(_selects(pdb["spec"]["selector"], lb) for lb in labels), ident(pdb)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_workloads_run_the_application_contract(name: str) -> None:
    objects = rendered(name)

    def only_container(kind: str, obj_name: str, container: str) -> Obj:
        obj = find(objects, kind, obj_name)
        ((_, template),) = pod_templates(obj)
        (c,) = [c for c in template["spec"]["containers"] if c["name"] == container]
        return c

    serving = only_container("Deployment", "aitm-serving", "serving")
    # The bento's image: BentoML's generated Dockerfile puts the bento at /home/bentoml/bento
    # (tests/integration/test_bento.py holds the two together).
    assert serving["image"].split("@")[0].rsplit(":", 1)[0] in {SERVING_IMAGE, "aitm-serving"}
    assert serving["command"] == [
        "bentoml",
        "serve",
        "/home/bentoml/bento",
        "--host",
        "0.0.0.0",
        "--port",
        "3000",
    ]
    assert (
        env_value(serving, "AITM_REDIS_CONNECTION")["valueFrom"]["secretKeyRef"]["name"]
        == "aitm-redis"
    )
    mounts = {m["mountPath"] for m in serving["volumeMounts"]}
    assert {"/models", "/logs/predictions", "/tmp"} <= mounts

    # The ConfigMap's values, the materialize job's Feast commands and the commands below are
    # executed by test_k8s_execute.py; what stays here is what running them cannot show.
    materialize = only_container("CronJob", "feast-materialize", "materialize")
    for c in (materialize, serving):
        assert (
            env_value(c, "AITM_FEAST_REGISTRY")["valueFrom"]["secretKeyRef"]["name"]
            == "aitm-feast-registry"
        ), c["name"]

    monitoring = only_container("CronJob", "aitm-monitoring", "monitoring")
    mounts = {m["mountPath"]: m for m in monitoring["volumeMounts"]}
    assert {"/logs/predictions", "/logs/labels", "/models", "/reports"} <= set(mounts)
    assert all(mounts[p].get("readOnly") for p in ("/logs/predictions", "/logs/labels", "/models"))
    ui = only_container("Deployment", "evidently-ui", "evidently-ui")
    assert ui["command"] == [
        "evidently",
        "ui",
        "--workspace",
        "/workspace/workspace",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]

    job = find(objects, "PyTorchJob", "aitm-train")
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        (c,) = replica["template"]["spec"]["containers"]
        assert c["name"] == "pytorch"  # the operator finds its port on the container of this name
        # $(AITM_DATASET) expands only from the container's own environment: the ConfigMap.
        assert {"configMapRef": {"name": c["envFrom"][0]["configMapRef"]["name"]}} in c["envFrom"]
        assert c["envFrom"][0]["configMapRef"]["name"].startswith("aitm-config")

    redis = only_container("StatefulSet", "redis", "redis")
    assert redis["image"].startswith("redis:7.2.") and redis["image"].endswith("-alpine")
    assert redis["securityContext"]["runAsUser"] == REDIS_UID
    assert env_value(redis, "REDIS_PASSWORD")["valueFrom"]["secretKeyRef"]["name"] == "aitm-redis"

    registry = only_container("StatefulSet", "feast-registry", "postgres")
    assert registry["image"].startswith("postgres:") and registry["image"].endswith("-alpine")
    assert registry["securityContext"]["runAsUser"] == POSTGRES_UID
    password = env_value(registry, "POSTGRES_PASSWORD")["valueFrom"]["secretKeyRef"]
    assert (password["name"], password["key"]) == ("aitm-feast-registry", "password")


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_serving_replicas_lie_within_the_autoscaler_range(name: str) -> None:
    # Otherwise every `kubectl apply` moves the Deployment outside what the HPA would choose.
    objects = rendered(name)
    replicas = find(objects, "Deployment", "aitm-serving")["spec"]["replicas"]
    hpa = find(objects, "HorizontalPodAutoscaler", "aitm-serving")["spec"]
    assert hpa["minReplicas"] <= replicas <= hpa["maxReplicas"]


def test_local_overlay_is_small_and_ephemeral() -> None:
    objects = rendered("overlays/local")
    assert find(objects, "Deployment", "aitm-serving")["spec"]["replicas"] == 1
    assert find(objects, "HorizontalPodAutoscaler", "aitm-serving")["spec"]["minReplicas"] == 1
    redis = find(objects, "StatefulSet", "redis")
    assert "volumeClaimTemplates" not in redis["spec"]
    (data,) = [v for v in redis["spec"]["template"]["spec"]["volumes"] if v["name"] == "data"]
    assert "emptyDir" in data
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]


def test_production_overlay_is_redundant_persistent_and_pinned() -> None:
    objects = rendered("overlays/production")
    assert find(objects, "Deployment", "aitm-serving")["spec"]["replicas"] >= 2
    hpa = find(objects, "HorizontalPodAutoscaler", "aitm-serving")
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    pdb = find(objects, "PodDisruptionBudget", "aitm-serving")
    assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "aitm-serving"}

    redis = find(objects, "StatefulSet", "redis")
    assert [t["metadata"]["name"] for t in redis["spec"]["volumeClaimTemplates"]] == ["data"]
    assert not redis["spec"]["template"]["spec"].get("volumes")
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"

    for obj in objects:
        for where, template in pod_templates(obj):
            for c in containers(template["spec"]):
                if is_app_image(c["image"]):
                    image = c["image"].split("@")[0].rsplit(":", 1)[0]
                    assert image in {APP_IMAGE, SERVING_IMAGE}, where
                    assert c["image"].split("@")[0] == f"{image}:{PRODUCTION_TAG}", where


def committable_files(root: Path) -> list[Path]:
    """Tracked files under `root` plus untracked ones git would pick up (ignored ones stay out)."""
    proc = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "."],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:  # not a git checkout: every file counts
        return sorted(p for p in root.rglob("*") if p.is_file())
    return sorted(root / f for f in proc.stdout.splitlines())


def secret_file_violations(files: list[Path]) -> list[str]:
    """Secret values that would be committed: Secret manifests, env files, generator inputs."""
    out = []
    committed = {f.resolve() for f in files}
    for path in files:
        if path.name.endswith(".env"):
            out.append(f"{path}: env files hold secrets; keep them untracked")
        if path.suffix not in {".yaml", ".yml"}:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "Secret":
                out.append(f"{path}: a Secret manifest is committed")
            for gen in doc.get("secretGenerator", []):
                if gen.get("literals"):
                    out.append(f"{path}: secretGenerator {gen.get('name')} has literal values")
                for src in gen.get("envs", []) + gen.get("files", []):
                    source = (path.parent / src.rpartition("=")[2]).resolve()
                    if source in committed:
                        out.append(f"{path}: secretGenerator reads committed file {src}")
    return out


def test_no_secret_values_are_committed() -> None:
    files = committable_files(K8S_DIR)
    assert any(f.name == "kustomization.yaml" for f in files), "found no kustomization in k8s/"
    assert secret_file_violations(files) == []


def test_secret_check_catches_committed_values(tmp_path: Path) -> None:
    (tmp_path / "redis.env").write_text("password=hunter2\n")
    (tmp_path / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {password: hunter2}\n"
    )
    (tmp_path / "creds.txt").write_text("hunter2\n")
    (tmp_path / "kustomization.yaml").write_text(
        "secretGenerator:\n"
        "  - {name: a, literals: [password=hunter2]}\n"
        "  - {name: b, files: [password=creds.txt]}\n"
    )
    violations = secret_file_violations(committable_files(tmp_path))
    assert len(violations) == 4, violations
    for expected in ("env files", "Secret manifest", "literal values", "committed file"):
        assert any(expected in v for v in violations), (expected, violations)


# ---------------------------------------------------------------------------------------------
# Each check fails when its property is broken (on a broken copy of k8s/)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path}: expected `{old}` exactly once"
    path.write_text(text.replace(old, new))


BREAKS: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "writable root fs": (
        "overlays/local",
        lambda k: _edit(
            k / "base/evidently-ui.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
        ),
        "Deployment/evidently-ui/evidently-ui: readOnlyRootFilesystem is not true",
    ),
    "capabilities kept": (
        "overlays/production",
        lambda k: _edit(k / "base/evidently-ui.yaml", "drop: [ALL]", "drop: [NET_RAW]"),
        "Deployment/evidently-ui/evidently-ui: capabilities must drop ALL",
    ),
    "root user": (
        "overlays/local",
        lambda k: _edit(
            k / "base/monitoring.yaml",
            "              securityContext:\n                runAsNonRoot: true\n"
            "                runAsUser: 10001",
            "              securityContext:\n                runAsNonRoot: true\n"
            "                runAsUser: 0",
        ),
        "CronJob/aitm-monitoring/monitoring: runAsUser is 0",
    ),
    "no limits": (
        "overlays/production",
        lambda k: _edit(
            k / "base/evidently-ui.yaml",
            "            limits:\n              cpu: 500m\n              memory: 1Gi\n",
            "",
        ),
        "Deployment/evidently-ui/evidently-ui: resources.limits lacks ['cpu', 'memory']",
    ),
    "readiness probe": (
        "overlays/local",
        lambda k: _edit(k / "base/serving.yaml", "path: /readyz", "path: /healthz"),
        "Deployment/aitm-serving: readinessProbe is not GET /readyz on 3000",
    ),
    "no scrape annotations": (
        "overlays/local",
        lambda k: _edit(
            k / "base/serving.yaml", 'prometheus.io/scrape: "true"', 'prometheus.io/scrape: "false"'
        ),
        "Deployment/aitm-serving: Prometheus scrape annotations missing",
    ),
    "no network policies": (
        "overlays/production",
        lambda k: _edit(k / "base/kustomization.yaml", "  - networkpolicies.yaml\n", ""),
        "NetworkPolicy: no default-deny policy for ingress and egress",
    ),
    "committed secret": (
        "overlays/local",
        lambda k: (
            (k / "base/secret.yaml").write_text(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: aitm-redis\n"
                "stringData:\n  password: hunter2\n"
            ),
            _edit(
                k / "base/kustomization.yaml",
                "  - namespace.yaml\n",
                "  - namespace.yaml\n  - secret.yaml\n",
            ),
        ),
        "Secret/aitm-redis: a Secret is rendered",
    ),
    "unpinned image": (
        "overlays/production",
        lambda k: _edit(
            k / "overlays/production/kustomization.yaml",
            "  - name: ghcr.io/example/aitm\n    newTag: 0.1.0",
            "  - name: ghcr.io/example/aitm\n    newTag: latest",
        ),
        "image 'ghcr.io/example/aitm:latest' is not pinned",
    ),
}


@pytest.fixture
def broken_k8s(tmp_path: Path) -> Path:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, copy)
    return copy


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_manifest_checks_catch_a_broken_copy(case: str, broken_k8s: Path) -> None:
    # The unbroken copy is clean: test_stack_is_hardened renders the same files.
    overlay, breaker, expected = BREAKS[case]
    breaker(broken_k8s)
    violations = manifest_violations(render(broken_k8s / overlay))
    assert any(expected in v for v in violations), violations


def test_world_size_check_catches_a_mismatch(broken_k8s: Path) -> None:
    path = broken_k8s / "overlays/production/training.yaml"
    path.write_text(
        path.read_text().replace("/Worker/replicas\n  value: 3", "/Worker/replicas\n  value: 5")
    )
    assert training_violations(render(broken_k8s / "overlays/production")) == [
        "PyTorchJob/aitm-train/Master: WORLD=4 but 6 replicas in all",
        "PyTorchJob/aitm-train/Worker: WORLD=4 but 6 replicas in all",
    ]


def test_schema_validation_catches_a_misspelt_field(broken_k8s: Path) -> None:
    _edit(broken_k8s / "base/serving.yaml", "          readinessProbe:", "          readinesProbe:")
    serving = find(render(broken_k8s / "overlays/local"), "Deployment", "aitm-serving")
    with pytest.raises(jsonschema.ValidationError, match="readinesProbe"):
        validate(serving, K8S_VERSIONS[-1])


def test_pytorchjob_schema_catches_a_bad_replica_spec(broken_k8s: Path) -> None:
    _edit(
        broken_k8s / "base/training.yaml",
        "    Worker:\n      replicas: 1\n",
        "    Worker:\n      replica: 1\n",
    )
    job = find(render(broken_k8s / "overlays/local"), "PyTorchJob", "aitm-train")
    with pytest.raises(jsonschema.ValidationError, match="replica"):
        validate(job, K8S_VERSIONS[-1])


def test_pytorchjob_pod_template_is_validated_as_a_core_pod_template(broken_k8s: Path) -> None:
    text = (broken_k8s / "base/training.yaml").read_text()
    (broken_k8s / "base/training.yaml").write_text(
        text.replace("containerPort: 23456", "containerPort: not-a-port")
    )
    job = find(render(broken_k8s / "overlays/local"), "PyTorchJob", "aitm-train")
    with pytest.raises(jsonschema.ValidationError, match="not-a-port"):
        validate(job, K8S_VERSIONS[-1])


def test_a_broken_json_patch_fails_the_render(broken_k8s: Path) -> None:
    # The PyTorchJob patches guard their list indexes with `test` ops.
    path = broken_k8s / "base/training.yaml"
    path.write_text(path.read_text().replace("- name: WORLD   #", "- name: W0RLD   #"))
    with pytest.raises(RenderError):
        render(broken_k8s / "overlays/production")


# ---------------------------------------------------------------------------------------------
# The Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


REQUIRED_COPIES = (
    "src/",
    "datasets/",
    "features/",
    "feature_repo/",
    "components/",
    "pipelines/",
    "registry/",
    "workflow/",
    "serving/",
    "monitoring/",
    "pyproject.toml",
    "README.md",
    "requirements.lock",
)
TORCH_CPU = re.compile(
    r"pip install (?=.*--index-url https://download\.pytorch\.org/whl/cpu)(?=.*\btorch==2\.13\.0\b)"
)
PROJECT_INSTALL = re.compile(r"pip install .*['\"]?\.\[pipeline,serving,monitoring\]['\"]?")


def dockerfile_violations(text: str) -> list[str]:
    out = []
    instructions = dockerfile_instructions(text)
    args = {}
    for word, rest in instructions:
        if word == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args.setdefault(key, value)
    stages: list[list[tuple[str, str]]] = []
    stage_names = set()
    for word, rest in instructions:
        if word == "FROM":
            stages.append([])
            image, _, alias = rest.partition(" AS ") if " AS " in rest else rest.partition(" as ")
            image = re.sub(
                r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image.strip()
            )
            if image not in stage_names:
                pinned = "@sha256:" in image or re.search(r":\d+\.\d+\.\d+", image)
                if not pinned or image.endswith(":latest"):
                    out.append(f"FROM {image}: pin the base to an exact version or digest")
                if not image.startswith("python:3.11"):
                    out.append(f"FROM {image}: expected a Python 3.11 base")
            if alias:
                stage_names.add(alias.strip())
        elif stages:
            stages[-1].append((word, rest))
    if not stages:
        return ["no FROM"]
    runs = [rest for word, rest in instructions if word == "RUN"]
    torch_runs = [r for r in runs if re.search(r"\btorch\b", r) and "pip install" in r]
    if not any(TORCH_CPU.search(r) for r in torch_runs):
        out.append("torch is not installed as torch==2.13.0 from the CPU index")
    if any("--extra-index-url" in r for r in runs):
        out.append("--extra-index-url mixes indexes; give torch its own --index-url")
    if not any(PROJECT_INSTALL.search(r) for r in runs):
        out.append("the project is not installed with .[pipeline,serving,monitoring]")
    final = stages[-1]
    users = [rest for word, rest in final if word == "USER"]
    if not users or users[-1].split(":")[0] != str(APP_UID):
        out.append(f"the final stage does not end as USER {APP_UID}")
    if ("WORKDIR", "/app") not in final:
        out.append("the final stage has no WORKDIR /app")
    copied = {tok for word, rest in final if word == "COPY" for tok in rest.split()[:-1]}
    missing = [p for p in REQUIRED_COPIES if p not in copied]
    if missing:
        out.append(f"the final stage does not copy {missing}")
    return out


def test_dockerfile_follows_the_image_contract() -> None:
    assert dockerfile_violations(DOCKERFILE.read_text()) == []


def test_dockerignore_keeps_the_context_to_what_is_copied() -> None:
    patterns = [
        ln.strip()
        for ln in DOCKERIGNORE.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert patterns[0] == "**", "start from ignoring everything, then allow what the image copies"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {p.rstrip("/") for p in REQUIRED_COPIES}


DOCKERFILE_BREAKS = {
    "latest base": (
        "ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm",
        "ARG PYTHON_IMAGE=python:latest",
        "FROM python:latest: pin the base",
    ),
    "floating base": (
        "ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm",
        "ARG PYTHON_IMAGE=python:3.11-slim",
        "FROM python:3.11-slim: pin the base",
    ),
    "root": ("USER 10001:10001", "USER root", "does not end as USER 10001"),
    # A user name cannot be checked by the kubelet's runAsNonRoot; the numeric uid can.
    "named user": ("USER 10001:10001", "USER aitm", "does not end as USER 10001"),
    "floating build stage": (
        "FROM ${PYTHON_IMAGE} AS build",
        "FROM python:3.11-slim AS build",
        "FROM python:3.11-slim: pin the base",
    ),
    "unpinned torch": ("torch==2.13.0", "torch", "torch is not installed"),
    "CUDA torch": (
        "--index-url https://download.pytorch.org/whl/cpu ",
        "",
        "torch is not installed",
    ),
    "no project": ('".[pipeline,serving,monitoring]"', '"."', "the project is not installed"),
    "no feature repo": (
        "COPY feature_repo/ feature_repo/\n",
        "",
        "does not copy ['feature_repo/']",
    ),
}


@pytest.mark.parametrize("case", sorted(DOCKERFILE_BREAKS))
def test_dockerfile_check_catches_a_broken_copy(case: str) -> None:
    old, new, expected = DOCKERFILE_BREAKS[case]
    text = DOCKERFILE.read_text()
    assert text.count(old) == 1, f"expected `{old}` exactly once in the Dockerfile"
    violations = dockerfile_violations(text.replace(old, new))
    assert any(expected in v for v in violations), violations
