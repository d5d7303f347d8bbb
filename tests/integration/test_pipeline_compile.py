"""The compiled IR YAML: deterministic, loadable by kfp, and gated by the evaluate step."""

from __future__ import annotations

import pytest
import yaml

from pipelines.cli import compile_pipeline

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


def test_packaging_runs_only_under_the_gate_condition(compiled):
    spec = yaml.safe_load(compiled[0].read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"fetch-features", "validate-features", "train-model",
                          "evaluate-model", "condition-1"}  # fmt: skip
    condition = tasks["condition-1"]["triggerPolicy"]["condition"]
    assert condition == "inputs.parameter_values['pipelinechannel--evaluate-model-Output'] == true"
    inner = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert set(inner) == {"package-model"}
    # Training waits for validation even though it only consumes the fetch step's output.
    assert "validate-features" in tasks["train-model"]["dependentTasks"]


def test_every_component_uses_the_configured_image_and_installs_nothing(compiled):
    from components import AITM_IMAGE

    executors = yaml.safe_load(compiled[0].read_text())["deploymentSpec"]["executors"]
    assert len(executors) == 5
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == AITM_IMAGE
        # The image holds kfp and the project: nothing is installed when a task starts.
        assert "pip install" not in " ".join(container["command"])
