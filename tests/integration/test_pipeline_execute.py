"""The compiled training pipeline, executed task by task as the KFP launcher would run it on a
cluster (tests/support/kfp_executor.py): each task in a fresh folder, HOME and filesystem,
sharing only the IR's artifacts and the PVCs the kfp-kubernetes platform spec mounts.

kfp's local runner runs every task on one filesystem and ignores the platform spec, so it cannot
see a pipeline that hands host paths between tasks; this check can, and a tiny pipeline shows it.
kfp reads the components' annotations at decoration time: no `from __future__ import annotations`.
"""

import shutil
from pathlib import Path

import pandas as pd
import pytest
from kfp import compiler, dsl, kubernetes

from tests.conftest import copy_repo
from tests.support.kfp_executor import execute, strip_platform
from tests.support.placeholder_bento import write_placeholder_bento

pytestmark = [pytest.mark.integration]

SCHEDULE = "2026-01-11T03:00:00Z"  # the small simulation's days: 2026-01-01 to 2026-01-10
EXPLICIT = dict(
    train_start="2026-02-01T00:00:00+00:00",
    train_end="2026-02-05T00:00:00+00:00",
    eval_start="2026-02-05T00:00:00+00:00",
    eval_end="2026-02-06T00:00:00+00:00",
)
CONFIG = "train:\n  max_epochs: 1\n  batch_size: 256\n  progress: false\n" \
    "gate:\n  default_auc_floor: 0.5\n"  # fmt: skip


# -- a tiny pipeline: task A writes a path, task B reads it -------------------------------


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def write_note(path: str):
    import os

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("hello")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def read_note(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _note_pipeline(mounted: bool):
    @dsl.pipeline(name="note")
    def note(path: str = "/shared/note.txt"):
        writer = write_note(path=path)
        reader = read_note(path=path).after(writer)
        if mounted:
            for task in (writer, reader):
                kubernetes.mount_pvc(task, pvc_name="scratch", mount_path="/shared")

    return note


def _compiled(pipeline, out: Path) -> Path:
    compiler.Compiler().compile(pipeline, str(out))
    return out


def test_a_host_path_handed_between_tasks_fails(tmp_path):
    from pipelines.local import run_local

    note, host = _note_pipeline(mounted=False), tmp_path / "host" / "note.txt"
    # kfp's local runner: one filesystem for every task, so the pipeline passes...
    assert run_local(note, tmp_path / "local", {"path": str(host)}).error is None
    assert host.read_text() == "hello"
    # ...where each task is its own pod, the reader finds nothing at that path.
    shutil.rmtree(host.parent)
    run = execute(_compiled(note, tmp_path / "note.yaml"), {"path": str(host)}, tmp_path / "run")
    assert run.tasks["write-note"].state == "succeeded"
    assert run.failed is not None and run.failed.name == "read-note"
    assert "FileNotFoundError" in run.failed.log
    # The writer wrote into its own pod's filesystem, not onto the host.
    assert not host.exists()
    assert list((tmp_path / "run" / "tasks" / "write-note" / "rootfs").rglob("note.txt"))


def test_the_same_pipeline_passes_with_a_volume_both_tasks_mount(tmp_path):
    package = _compiled(_note_pipeline(mounted=True), tmp_path / "note.yaml")
    run = execute(package, {}, tmp_path / "run")
    assert run.succeeded, run.describe()
    assert run.tasks["read-note"].outputs["Output"] == "hello"
    assert (run.volumes["scratch"] / "note.txt").read_text() == "hello"
    assert run.tasks["read-note"].parameters["path"] == str(run.volumes["scratch"] / "note.txt")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def verdict(promote: bool) -> bool:
    return promote


@dsl.pipeline(name="gated")
def _gated(promote: bool = True):
    gate = verdict(promote=promote)
    with dsl.If(gate.output == True):  # noqa: E712
        write_note(path="/tmp/unused/note.txt")


@pytest.mark.parametrize("promote", [True, False])
def test_the_runner_follows_the_gate_condition(tmp_path, promote):
    package = _compiled(_gated, tmp_path / "gated.yaml")
    run = execute(package, {"promote": promote}, tmp_path / "run")
    assert run.succeeded, run.describe()
    assert run.tasks["write-note"].state == ("succeeded" if promote else "skipped")


# -- the training pipeline ----------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    from pipelines.cli import compile_pipeline

    return compile_pipeline(tmp_path_factory.mktemp("execute") / "training.yaml")


@pytest.fixture(scope="module")
def volumes(small_sim, tmp_path_factory) -> dict[str, Path]:
    """The PVCs as a cluster would hold them before a first run: aitm-data with the applied
    Feast repo and the simulation (oracle), aitm-models with a bentofile and no model yet."""
    from aitm.dataset import load_spec
    from features.build import build_sources
    from features.store import apply

    root = tmp_path_factory.mktemp("pvcs")
    data, models = root / "aitm-data", root / "aitm-models"
    repo = copy_repo(data / "feature_repo")
    build_sources(load_spec(), repo, small_sim)
    apply(repo)
    shutil.copytree(small_sim, data / "sim")
    write_placeholder_bento(models / "serving")
    return {"aitm-data": data, "aitm-models": models}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_compiled_pipeline_runs_task_by_task_in_separate_pods(compiled, volumes, tmp_path):
    from registry.store import promoted

    arguments = dict(  # feature_repo and bentoml_home: their defaults, the mount paths
        train_days=9, eval_days=1, config_yaml=CONFIG, oracle_data="/data/sim",
        bentofile="/models/serving/bentofile.yaml", git_revision="test",
    )  # fmt: skip
    run = execute(compiled, arguments, tmp_path / "run", volumes=volumes, schedule_time=SCHEDULE)
    assert run.succeeded, run.describe()
    assert [n for n, t in run.tasks.items() if t.state != "succeeded"] == []
    # The windows come from the schedule time: the last whole day held out, nine before it.
    windows = run.tasks["derive-windows"].outputs
    assert windows == {"train_start": "2026-01-01T00:00:00+00:00",
                       "train_end": "2026-01-10T00:00:00+00:00",
                       "eval_start": "2026-01-10T00:00:00+00:00",
                       "eval_end": "2026-01-11T00:00:00+00:00"}  # fmt: skip
    fetch = run.tasks["fetch-features"]
    assert fetch.parameters["feature_repo"] == str(volumes["aitm-data"] / "feature_repo")
    assert fetch.artifacts["train_data"].metadata["rows"] > 40_000
    # The data docs are one HTML file the KFP UI can render.
    docs = run.tasks["validate-features"].artifacts["data_docs"]
    assert docs.path.is_file() and "<html>" in docs.path.read_text()
    # Promoted into the BentoML store on the models volume, with a bento built there.
    current = promoted(volumes["aitm-models"])
    assert current is not None
    assert current.tag == run.tasks["package-model"].artifacts["registered"].metadata["model_tag"]
    assert current.info["run"].startswith("aitm-training")
    assert list((volumes["aitm-models"] / "bentos" / "placeholder").glob("*/bento.yaml"))
    # Nothing escaped onto the host's root.
    assert not Path("/models").exists() and not Path("/data").exists()


def test_without_the_volumes_the_pipeline_fails_at_its_first_shared_path(
    compiled, volumes, tmp_path
):
    package = strip_platform(compiled, tmp_path / "no-volumes.yaml")
    arguments = dict(train_days=9, eval_days=1, config_yaml=CONFIG)
    run = execute(package, arguments, tmp_path / "run", volumes=volumes, schedule_time=SCHEDULE)
    assert run.tasks["derive-windows"].state == "succeeded"
    assert run.failed is not None and run.failed.name == "fetch-features"
    assert "feature_store.yaml" in run.failed.log or "No such file" in run.failed.log
    assert set(run.tasks) == {"derive-windows", "fetch-features"}


def test_explicit_windows_win_over_the_schedule(compiled, tmp_path):
    """Only the windows task: a local run's explicit windows pass through unchanged."""
    explicit = EXPLICIT
    package = strip_platform(compiled, tmp_path / "windows.yaml")
    run = execute(package, {**explicit, "feature_repo": "/nowhere"}, tmp_path / "run",
                  schedule_time=SCHEDULE)  # fmt: skip
    assert run.tasks["derive-windows"].outputs == explicit
    assert pd.Timestamp(explicit["eval_end"]) > pd.Timestamp(SCHEDULE)
