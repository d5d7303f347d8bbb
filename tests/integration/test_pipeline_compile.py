"""The compiled IR YAML: deterministic, loadable by kfp, gated by the evaluate step, and
runnable on a cluster: volumes, caching, resources and retries in the package."""

from __future__ import annotations

import pytest
import yaml

from pipelines.cli import compile_pipeline
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compiled")
    return compile_pipeline(folder / "a.yaml"), compile_pipeline(folder / "b.yaml")


def test_two_compiles_give_the_same_bytes(compiled):
    first, second = compiled
    assert first.read_bytes() == second.read_bytes()


def test_kfp_loads_the_package_back_with_its_inputs(compiled):
    from kfp import components

    pipeline = components.load_component_from_file(str(compiled[0]))
    assert pipeline.name == "aitm-training"
    inputs = set(pipeline.component_spec.inputs)
    assert {"feature_repo", "train_start", "eval_end", "bentoml_home", "config_yaml"} <= inputs
    assert {"train_days", "eval_days"} <= inputs


def test_packaging_runs_only_under_the_gate_condition(compiled):
    spec, _ = _documents(compiled[0])
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"derive-windows", "fetch-features", "validate-features", "train-model",
                          "evaluate-model", "condition-1"}  # fmt: skip
    condition = tasks["condition-1"]["triggerPolicy"]["condition"]
    assert condition == "inputs.parameter_values['pipelinechannel--evaluate-model-Output'] == true"
    inner = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inner) == {"package-model"}
    # Training waits for validation even though it only consumes the fetch step's output.
    assert "validate-features" in tasks["train-model"]["dependentTasks"]


def test_every_component_uses_the_configured_image_and_installs_nothing(compiled):
    from components import AITM_IMAGE

    executors = _documents(compiled[0])[0]["deploymentSpec"]["executors"]
    assert len(executors) == 6
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == AITM_IMAGE
        # The image holds kfp and the project: nothing is installed when a task starts.
        assert "pip install" not in " ".join(container["command"])


def _documents(path):
    pipeline, platform = yaml.safe_load_all(path.read_text())
    return pipeline, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _tasks(pipeline):
    inner = pipeline["components"]["comp-condition-1"]["dag"]["tasks"]
    return {**pipeline["root"]["dag"]["tasks"], **inner}


def test_the_steps_that_share_state_mount_the_volumes_of_k8s_storage(compiled):
    from pipelines.training_pipeline import DATA_MOUNT, FEATURE_REPO, MODELS_MOUNT

    pipeline, platform = _documents(compiled[0])
    mounts = {label: {m["constant"]: m["mountPath"] for m in spec["pvcMount"]}
              for label, spec in platform.items()}  # fmt: skip
    assert mounts == {
        "exec-fetch-features": {"aitm-data": DATA_MOUNT},
        "exec-evaluate-model": {"aitm-data": DATA_MOUNT, "aitm-models": MODELS_MOUNT},
        "exec-package-model": {"aitm-models": MODELS_MOUNT},
    }
    # The PVC names are the manifests' own.
    storage = yaml.safe_load_all((REPO_ROOT / "k8s" / "base" / "storage.yaml").read_text())
    claims = {doc["metadata"]["name"] for doc in storage if doc}
    assert {"aitm-data", "aitm-models"} <= claims
    # The path parameters default to the mount paths (a local run passes host paths).
    defaults = pipeline["root"]["inputDefinitions"]["parameters"]
    assert defaults["feature_repo"]["defaultValue"] == FEATURE_REPO
    assert defaults["bentoml_home"]["defaultValue"] == MODELS_MOUNT


def test_steps_reading_or_writing_mutable_state_are_never_cached(compiled):
    tasks = _tasks(_documents(compiled[0])[0])
    cached = {name for name, task in tasks.items()
              if task.get("cachingOptions", {}).get("enableCache")}  # fmt: skip
    assert cached == {"derive-windows", "validate-features", "train-model"}


def test_every_task_has_requests_and_limits_and_training_retries(compiled):
    pipeline, _ = _documents(compiled[0])
    for label, executor in pipeline["deploymentSpec"]["executors"].items():
        resources = executor["container"]["resources"]
        for key in ("resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest",
                    "resourceMemoryLimit"):  # fmt: skip
            assert key in resources, (label, key)
        assert resources["cpuRequest"] <= resources["cpuLimit"], label
        assert resources["memoryRequest"] <= resources["memoryLimit"], label
    retries = {n: t["retryPolicy"]["maxRetryCount"] for n, t in _tasks(pipeline).items()
               if "retryPolicy" in t}  # fmt: skip
    assert retries == {"train-model": 2}


def test_the_windows_come_from_the_schedule_time(compiled):
    tasks = _tasks(_documents(compiled[0])[0])
    schedule = tasks["derive-windows"]["inputs"]["parameters"]["schedule_time"]
    assert schedule == {"runtimeValue": {"constant": "{{$.pipeline_job_schedule_time_utc}}"}}
    for step in ("fetch-features", "validate-features", "evaluate-model", "package-model"):
        window = tasks[step]["inputs"]["parameters"]["eval_start"]
        if step == "package-model":  # inside the condition: through the sub-DAG's inputs
            channel = "pipelinechannel--derive-windows-eval_start"
            assert window == {"componentInputParameter": channel}
        else:
            assert window["taskOutputParameter"]["producerTask"] == "derive-windows", step


def test_the_local_variant_differs_only_in_having_no_schedule_time(compiled, tmp_path):
    """kfp 2.17.3's local runner fails on the schedule-time placeholder: the DAG a local run
    executes passes an empty schedule time (its windows are explicit), and nothing else."""
    from kfp import compiler

    from pipelines.training_pipeline import local_training_pipeline

    out = tmp_path / "local.yaml"
    compiler.Compiler().compile(local_training_pipeline, str(out))
    cluster, local = _documents(compiled[0])[0], _documents(out)[0]
    params = local["root"]["dag"]["tasks"]["derive-windows"]["inputs"]["parameters"]
    assert params["schedule_time"] == {"runtimeValue": {"constant": ""}}
    params["schedule_time"] = {"runtimeValue": {"constant": "{{$.pipeline_job_schedule_time_utc}}"}}
    assert local == cluster
