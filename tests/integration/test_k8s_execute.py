"""The production overlay's containers, executed on this machine in the cluster's order.

The overlay is rendered by real kustomize; each container's command, args and environment are
taken from it and turned into a local process by `tests.support.k8s_node.Node` (ConfigMap
envFrom resolved, Secret references filled with test values, `$(VAR)` expanded as the kubelet
does, every mount path and the image's /app rewritten to host folders, claims shared between
pods as on a cluster). Then, against a real `redis-server`:

1. the materialize CronJob's init container (`feast apply`) and main container
   (`feast materialize-incremental`) fill Redis and the Feast SQL registry;
2. the serving Deployment's command starts, answers its readiness probe, and POST /rank answers
   200 with features read from Redis (after FLUSHALL the same request finds none);
3. the monitoring CronJob's command reads the prediction log serving wrote on the shared claim;
4. the PyTorchJob's Master and Workers run as WORLD torchrun processes (MASTER_ADDR 127.0.0.1, a
   free port: what the training operator would inject) and rank 0 writes the candidate model.

The broken-wiring tests copy k8s/, put back a mistake this stack once had (the materialize job
naming the Redis connection REDIS_CONNECTION_STRING; Feast commands without `-f` the Redis
variant) and show the same run fails.

What this cannot cover: Postgres itself (the registry URL is SQLite through the same Feast
SqlRegistry code; the Postgres StatefulSet is not run), the image's contents beyond the files
the Dockerfile COPYs (its Python packages are this environment's), read-only root filesystems
and mounts (a root test process may write anywhere), the kubelet, scheduler, probes' timing,
resource limits, DNS and Service names, NetworkPolicies, RBAC and Pod Security admission.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.integration.serving_server import eventually
from tests.support.k8s_node import (
    BASE_PATH,
    Image,
    Node,
    Process,
    app_image,
    container,
    describe,
    rebind,
    run,
    start,
)
from tests.support.kustomize import Obj, find, render
from tests.support.redis_server import free_port, local_redis, stop_process, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server is not on PATH (apt-get install -y redis-server)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "k8s"
OVERLAY = "overlays/production"
CONTEXT = {"position": 2, "hour": 9, "channel": "feed"}
APP_IMAGE, SERVING_IMAGE = "ghcr.io/example/aitm", "ghcr.io/example/aitm-serving"
BENTOFILE = ROOT / "serving" / "bentofile.yaml"
BENTO_PATH = "/home/bentoml/bento"  # where BentoML's generated Dockerfile puts the bento
# Host-only settings: one intra-op thread per process on this shared 2-core machine.
HOST = {"OMP_NUM_THREADS": "1"}
STEP_TIMEOUT_S = 300


# ---------------------------------------------------------------------------------------------
# Set-up: a node with the stack's volumes filled as an operator would fill them


def _redis(connection: str, *command: str) -> str:
    host, port = connection.split(",")[0].split(":")
    done = subprocess.run(
        ["redis-cli", "-h", host, "-p", port, *command],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _offline_files(serving_model, out: Path, work: Path) -> dict[str, pd.DataFrame]:
    """The served model's users and ads as `features build` writes them, moved in time so the
    newest snapshot is an hour old (materialize-incremental loads the last TTL only)."""
    from aitm.dataset import load_spec
    from features.build import build_sources
    from features.fields import FeastLayout
    from tests.conftest import copy_repo

    spec = load_spec()
    repo = copy_repo(work / "feature_repo")
    build_sources(spec, repo, serving_model.sim)
    layout = FeastLayout(spec)
    tables = {e.name: pd.read_parquet(repo / "data" / e.snapshot_file) for e in layout.stored}
    newest = max(t[layout.timestamp].max() for t in tables.values())
    shift = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=1) - newest
    out.mkdir(parents=True, exist_ok=True)
    for entity in layout.stored:
        table = tables[entity.name]
        table[layout.timestamp] = table[layout.timestamp] + shift
        table.to_parquet(out / entity.snapshot_file, index=False, coerce_timestamps="us")
    return tables


PROMOTE = """
from pathlib import Path
from aitm.data import read_table
from monitoring.reference import build_reference
from registry.store import promote, promoted
home = Path({home!r})
info = promoted(home)
reference = build_reference(info.path, read_table(Path({sim!r}) / "test"), Path({out!r}),
                            {{"window": "test split", "model_tag": info.tag}})
promote(home, info.tag, info.path, {{}}, reference=reference)
"""


def _model_store(serving_model, home: Path, work: Path, reference: bool) -> None:
    """The tiny served model's store on the models claim; with `reference`, promoted again with
    a reference window (what the training pipeline's promotion leaves for monitoring)."""
    shutil.copytree(serving_model.home, home, dirs_exist_ok=True)
    if not reference:
        return
    code = PROMOTE.format(home=str(home), sim=str(serving_model.sim), out=str(work / "reference"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]


def _training_data(out: Path) -> None:
    from aitm.simulator import SimulationConfig, simulate

    config = SimulationConfig(rows=3_000, days=4, val_days=1, test_days=1, n_users=300,
                              n_ads=40, chunk_rows=3_000)  # fmt: skip
    simulate(config, out)


def serving_image(serving_model, work: Path) -> Image:
    """The containerized bento, as far as serving needs it: the exported bento (code and model)
    at /home/bentoml/bento, /app/datasets and /app/feature_repo pointing into it (the bentofile's
    setup script), the bentofile's `envs`, and this environment's Python."""
    import tarfile

    import yaml

    from registry.store import build_bento

    home = work / "bento-build"
    shutil.copytree(serving_model.home, home)
    tag = build_bento(BENTOFILE, home, serving_model.tag)
    archive = work / "aitm.bento"
    code = f"import bentoml; bentoml.export_bento({tag!r}, {str(archive)!r})"
    env = {"PATH": BASE_PATH, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    bento = work / "bento"
    with tarfile.open(archive) as tar:
        tar.extractall(bento, filter="data")
    envs = {e["name"]: e["value"] for e in yaml.safe_load(BENTOFILE.read_text()).get("envs", [])}
    envs.update(BENTO_PATH=BENTO_PATH, BENTOML_HOME="/home/bentoml/",
                PATH=f"{Path(sys.prefix) / 'bin'}:{BASE_PATH}")  # fmt: skip
    paths = {BENTO_PATH: bento, "/app/datasets": bento / "src" / "datasets",
             "/app/feature_repo": bento / "src" / "feature_repo"}  # fmt: skip
    return Image(env=envs, workdir=BENTO_PATH, paths=paths)


@dataclasses.dataclass
class Stack:
    node: Node
    redis: str  # the Feast connection string of the test's redis-server
    users: list[int]
    ads: list[int]
    tasks: list[str]


def make_node(root: Path, objects: list[Obj], redis: str, serving: Image) -> Node:
    secrets = {
        ("aitm-redis", "connection-string"): redis,
        ("aitm-redis", "password"): "",
        ("aitm-feast-registry", "url"): f"sqlite:///{root / 'feast-registry.sqlite'}",
        ("aitm-feast-registry", "password"): "unused-here",
    }
    images = {APP_IMAGE: app_image(root / "image"), SERVING_IMAGE: serving}
    return Node(root, objects, secrets, images)


def fill_volumes(
    node: Node, serving_model, work: Path, everything: bool = True
) -> dict[str, pd.DataFrame]:
    """The offline files and the model store (with `everything`, also the monitoring reference
    and the training data), where the manifests' own settings put them: read from the rendered
    containers, not written down here."""
    objects = node.objects
    materialize = node.process(container(objects, "CronJob", "feast-materialize", "materialize"))
    tables = _offline_files(serving_model, Path(materialize.env["AITM_FEAST_DATA"]), work)
    serving = node.process(container(objects, "Deployment", "aitm-serving", "serving"))
    # The registry serving follows (its own BENTOML_HOME is per pod, and the bento's store).
    _model_store(serving_model, Path(serving.env["AITM_REGISTRY_HOME"]), work, reference=everything)
    if everything:
        master = node.process(container(objects, "PyTorchJob", "aitm-train", "pytorch", "Master"))
        _training_data(Path(master.argv[master.argv.index("--data") + 1]))
    return tables


def make_stack(node: Node, redis: str, tables: dict[str, pd.DataFrame], n_ads: int) -> Stack:
    from aitm.dataset import load_spec
    from features.fields import FeastLayout

    spec = load_spec()
    layout = FeastLayout(spec)
    user, ad = layout.entity("user"), layout.entity("ad")
    return Stack(
        node=node,
        redis=redis,
        users=[int(u) for u in tables[user.name][user.key].unique()[:3]],
        ads=[int(a) for a in tables[ad.name][ad.key].unique()[:n_ads]],
        tasks=list(spec.tasks),
    )


@pytest.fixture(scope="module")
def redis():
    with local_redis() as connection:
        yield connection


@pytest.fixture(scope="module")
def bento(serving_model, tmp_path_factory) -> Image:
    return serving_image(serving_model, tmp_path_factory.mktemp("k8s-bento"))


@pytest.fixture(scope="module")
def stack(serving_model, redis, bento, tmp_path_factory) -> Stack:
    root = tmp_path_factory.mktemp("k8s-node")
    node = make_node(root, render(K8S_DIR / OVERLAY), redis, bento)
    tables = fill_volumes(node, serving_model, tmp_path_factory.mktemp("k8s-work"))
    return make_stack(node, redis, tables, n_ads=20)


# ---------------------------------------------------------------------------------------------
# The stack's steps


def feast_steps(node: Node) -> list[tuple[str, subprocess.CompletedProcess]]:
    """The materialize CronJob's pod: its init container, then its container (stops at the
    first failure, as the kubelet would)."""
    out = []
    for name in ("feast-apply", "materialize"):
        c = container(node.objects, "CronJob", "feast-materialize", name)
        done = run(node.process(c, **HOST), STEP_TIMEOUT_S)
        out.append((c.where, done))
        if done.returncode != 0:
            break
    return out


def _serving_process(node: Node) -> tuple[Process, int, str]:
    c = container(node.objects, "Deployment", "aitm-serving", "serving")
    process = node.process(c, **HOST)
    (http,) = [p["containerPort"] for p in c.spec["ports"] if p["name"] == "http"]
    argv = process.argv
    assert argv[argv.index("--port") + 1] == str(http), "serving listens on its container port"
    port = free_port()
    ready = c.spec["readinessProbe"]["httpGet"]["path"]
    return dataclasses.replace(process, argv=rebind(argv, port)), port, ready


@contextmanager
def serving(node: Node, log: Path, timeout_s: float = 120.0):
    """The serving container's command on 127.0.0.1, yielded once its readiness probe answers
    200; RuntimeError with its log if it exits or never gets ready."""
    process, port, ready_path = _serving_process(node)
    server = start(process, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def ready() -> bool:
                try:
                    return client.get(ready_path).status_code == 200
                except httpx.TransportError:
                    return False

            try:
                wait_until(ready, server, timeout_s, "the serving container", every_s=0.3)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}:\n{log.read_text()[-4000:]}") from exc
            yield client
    finally:
        stop_process(server, timeout_s=15)


def rank_body(stack: Stack, user: int) -> dict:
    tasks = stack.tasks
    candidates = [{"ad_id": a, "weight": 1.0, "objective": tasks[i % len(tasks)]}
                  for i, a in enumerate(stack.ads)]  # fmt: skip
    return {"user_id": user, "context": CONTEXT, "candidates": candidates}


def registry_services(url: str) -> set[str]:
    """The feature services a Feast SQL registry holds (none where it has no tables yet)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    if not sqlalchemy.inspect(engine).has_table("feature_services"):
        return set()
    with engine.connect() as db:
        rows = db.execute(sqlalchemy.text("SELECT feature_service_name FROM feature_services"))
        return {row[0] for row in rows}


def wiring_failure(stack: Stack, log: Path) -> str | None:
    """Where the feature path fails: apply, materialize, then what serving would read (its
    registry's feature service and its Redis, checked before a slow start that could only time
    out), serving's start and POST /rank. None if it works."""
    for where, done in feast_steps(stack.node):
        if done.returncode != 0:
            return f"{where}: {describe(done)}"
    env = _serving_process(stack.node)[0].env
    if not registry_services(env["AITM_FEAST_REGISTRY"]):
        return "serving's registry: no feature service"
    if int(_redis(env["AITM_REDIS_CONNECTION"], "DBSIZE")) == 0:
        return "serving's Redis: empty"
    try:
        with serving(stack.node, log) as client:
            answer = client.post("/rank", json=rank_body(stack, stack.users[0]))
            if answer.status_code != 200:
                return f"POST /rank: {answer.status_code} {answer.text[:2000]}"
    except RuntimeError as exc:
        return f"serving: {exc}"
    return None


# ---------------------------------------------------------------------------------------------
# The production overlay, executed


@pytest.fixture(scope="module")
def materialized(stack: Stack):
    steps = feast_steps(stack.node)
    for where, done in steps:
        assert done.returncode == 0, f"{where}: {describe(done)}"
    assert [where for where, _ in steps] == [
        "CronJob/feast-materialize/feast-apply",
        "CronJob/feast-materialize/materialize",
    ]
    return steps


@pytest.fixture(scope="module")
def served(stack: Stack, materialized, tmp_path_factory):
    with serving(stack.node, tmp_path_factory.mktemp("k8s-serving") / "serving.log") as client:
        yield client


def test_materialize_job_fills_redis_and_the_sql_registry(stack: Stack, materialized) -> None:

    assert int(_redis(stack.redis, "DBSIZE")) > 0
    assert registry_services(stack.node.secrets[("aitm-feast-registry", "url")]) == {"aitm_v1"}
    # The offline sources were registered at the data volume's path, not inside the image.
    materialize = stack.node.process(
        container(stack.node.objects, "CronJob", "feast-materialize", "materialize")
    )
    assert materialize.env["AITM_FEAST_DATA"].startswith(str(stack.node.claim("aitm-data")))


def test_serving_ranks_with_features_read_from_redis(stack: Stack, served) -> None:
    body = rank_body(stack, stack.users[0])
    answer = served.post("/rank", json=body)
    assert answer.status_code == 200, answer.text
    assert sorted(c["ad_id"] for c in answer.json()["candidates"]) == sorted(stack.ads)

    _redis(stack.redis, "FLUSHALL")  # the features were Redis's: without them, none is found
    missing = served.post("/rank", json=body)
    assert missing.status_code == 404, missing.text

    # The CronJob's next run would not bring them back (materialize-incremental loads what
    # changed since its last run): the documented reload is the same pod spec running
    # `feast materialize START END` (k8s/README.md).
    c = container(stack.node.objects, "CronJob", "feast-materialize", "materialize")
    process = stack.node.process(c, **HOST)
    script = process.argv[-1].replace("materialize-incremental", "materialize 2020-01-01T00:00:00")
    done = run(dataclasses.replace(process, argv=[*process.argv[:-1], script]), STEP_TIMEOUT_S)
    assert done.returncode == 0, describe(done)
    again = served.post("/rank", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["candidates"] == answer.json()["candidates"]


def test_monitoring_job_reads_the_logs_serving_wrote(stack: Stack, served) -> None:
    for _ in range(3):  # 3 users x 20 candidates x 3: past the job's min_rows (100)
        for user in stack.users:
            assert served.post("/rank", json=rank_body(stack, user)).status_code == 200
    c = container(stack.node.objects, "CronJob", "aitm-monitoring", "monitoring")
    process = stack.node.process(c, **HOST)
    logs = process.host("/logs/predictions")
    assert logs == stack.node.claim("aitm-prediction-logs"), "serving and monitoring share it"

    def logged() -> bool:
        return any(p.stat().st_size for p in logs.glob("predictions-*.jsonl"))

    assert eventually(logged), f"serving wrote no prediction log to {logs}"
    done = run(process, STEP_TIMEOUT_S)
    # 0: every test passed, 1: a test failed (the alert); anything else is a broken job.
    assert done.returncode in (0, 1), describe(done)
    out = Path(process.argv[process.argv.index("--out") + 1])  # argv holds host paths
    summary = json.loads((out / "summary.json").read_text())
    assert summary, "an empty summary"
    assert out.is_relative_to(stack.node.claim("evidently-workspace")), "the UI's volume"
    workspace = Path(process.argv[process.argv.index("--workspace") + 1])
    assert any(workspace.iterdir()), "no snapshot in the workspace the UI serves"


def test_training_job_runs_world_processes_and_rank_0_writes_the_model(stack: Stack) -> None:
    job = find(stack.node.objects, "PyTorchJob", "aitm-train")["spec"]["pytorchReplicaSpecs"]
    replicas = [(rtype, i) for rtype, spec in job.items() for i in range(spec["replicas"])]
    port = free_port()
    processes = []
    for rank, (rtype, i) in enumerate(replicas):
        c = container(stack.node.objects, "PyTorchJob", "aitm-train", "pytorch", rtype)
        c = dataclasses.replace(c, pod=f"{c.pod}-{i}")
        injected = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                    "WORLD_SIZE": str(len(replicas)), "PYTHONUNBUFFERED": "1"}  # fmt: skip
        process = stack.node.process(c, injected, **HOST)
        assert process.env["WORLD"] == str(len(replicas)), "WORLD must equal the replicas"
        processes.append(process)
    out = processes[0].host("/models/candidate")
    logs = [stack.node.root / f"train-{rank}.log" for rank in range(len(processes))]
    running = [start(p, log) for p, log in zip(processes, logs, strict=True)]
    try:
        codes = [p.wait(timeout=STEP_TIMEOUT_S) for p in running]
    finally:
        for p in running:
            if p.poll() is None:
                stop_process(p)
    assert codes == [0] * len(codes), "\n".join(log.read_text()[-3000:] for log in logs)
    assert len(processes) == 4, "the production overlay trains on a Master and 3 Workers"
    from aitm.checkpoint import MANIFEST

    assert (out / MANIFEST).is_file(), f"rank 0 wrote no model artifact to {out}"


# ---------------------------------------------------------------------------------------------
# The same run fails on the mistakes this stack once had


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: `{old}` not found"
    path.write_text(text.replace(old, new))


def _no_redis_variant(k8s: Path) -> None:
    _edit(k8s / "base/materialize.yaml", ", -f, /app/feature_repo/feature_store.redis.yaml", "")
    _edit(k8s / "base/materialize.yaml", " -f /app/feature_repo/feature_store.redis.yaml", "")


# case -> (the break, where the run must fail)
BREAKS: dict[str, tuple[Callable[[Path], None], str]] = {
    "materialize names the connection REDIS_CONNECTION_STRING": (
        lambda k: _edit(
            k / "base/materialize.yaml",
            "- name: AITM_REDIS_CONNECTION",
            "- name: REDIS_CONNECTION_STRING",
        ),
        "CronJob/feast-materialize/",  # Feast cannot reach ${AITM_REDIS_CONNECTION}
    ),
    # apply and materialize then work on the image's own SQLite files: serving, on the Redis
    # variant's registry and Redis, finds neither its feature service nor any features.
    "feast commands without -f feature_store.redis.yaml": (_no_redis_variant, "serving's"),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_broken_wiring_fails_the_run(
    case: str, serving_model, redis, bento, tmp_path: Path
) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, copy)
    breaker, where = BREAKS[case]
    breaker(copy)
    _redis(redis, "FLUSHALL")  # nothing left from another run may hide the break
    node = make_node(tmp_path / "node", render(copy / OVERLAY), redis, bento)
    tables = fill_volumes(node, serving_model, tmp_path / "work", everything=False)
    failure = wiring_failure(make_stack(node, redis, tables, n_ads=5), tmp_path / "serving.log")
    assert failure is not None, f"{case}: the broken stack ran end to end"
    assert failure.startswith(where) or failure.startswith("POST /rank"), failure
