"""The training DAG: windows -> fetch -> validate -> train -> evaluate/gate -> (if promoted)
package.

Validation failing raises, so nothing downstream runs; packaging runs only under
`dsl.If(gate == True)`, so a rejected model never reaches the model store.

On a cluster every task is its own pod: nothing but the artifacts and the volumes below travels
between tasks. The offline Feast repo (declarations, Parquet sources, file registry) lives on the
`aitm-data` volume, the BentoML store with the promotion pointer on `aitm-models`
(k8s/base/storage.yaml); the path parameters default to where they are mounted. kfp's local
runner ignores the platform config (mounts, caching, resources, retries): a local run passes
host paths for the same parameters.
"""

from kfp import dsl, kubernetes

from components.training import (
    derive_windows,
    evaluate_model,
    fetch_features,
    package_model,
    train_model,
    validate_features,
)

PIPELINE_NAME = "aitm-training"
GATE_CONDITION = "gate-passed"

# The volumes (PVC name -> mount path), named as in k8s/base/storage.yaml.
DATA_PVC, DATA_MOUNT = "aitm-data", "/data"
MODELS_PVC, MODELS_MOUNT = "aitm-models", "/models"
FEATURE_REPO = f"{DATA_MOUNT}/feature_repo"  # the applied repo `workflow.prepare` builds

# (cpu request, memory request, cpu limit, memory limit) per step.
RESOURCES = {
    "windows": ("100m", "256Mi", "500m", "512Mi"),
    "fetch": ("1", "4Gi", "2", "8Gi"),
    "validate": ("1", "2Gi", "2", "4Gi"),
    "train": ("4", "8Gi", "8", "16Gi"),
    "evaluate": ("1", "4Gi", "2", "8Gi"),
    "package": ("1", "2Gi", "2", "4Gi"),
}


def _sized(task: dsl.PipelineTask, step: str, name: str) -> dsl.PipelineTask:
    cpu, memory, cpu_limit, memory_limit = RESOURCES[step]
    task.set_display_name(name)
    task.set_cpu_request(cpu).set_memory_request(memory)
    return task.set_cpu_limit(cpu_limit).set_memory_limit(memory_limit)


def _mount(task: dsl.PipelineTask, *volumes: tuple[str, str]) -> dsl.PipelineTask:
    for pvc, path in volumes:
        kubernetes.mount_pvc(task, pvc_name=pvc, mount_path=path)
    return task


def build_training_pipeline(schedule_time: str = dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER):
    """The training pipeline; `schedule_time` is what derive-windows gets: on a cluster the run's
    scheduled time (a one-off run: its creation time), filled in by KFP."""

    @dsl.pipeline(name=PIPELINE_NAME, description="Train AITM from Feast, gate it, package it.")
    def training_pipeline(
        feature_repo: str = FEATURE_REPO,
        bentoml_home: str = MODELS_MOUNT,
        train_start: str = "",  # the four windows: all given, or none (derived from the schedule)
        train_end: str = "",
        eval_start: str = "",
        eval_end: str = "",
        train_days: int = 27,  # derived windows: train on these days before the evaluation days
        eval_days: int = 3,  # the whole UTC days before the scheduled time
        config_yaml: str = "",
        dataset_yaml: str = "",  # the dataset spec's YAML; empty: datasets/simulated.yaml
        feature_service: str = "",  # empty: the spec's (name_v<version>)
        nproc_per_node: int = 1,
        oracle_data: str = "",
        bentofile: str = "",
        git_revision: str = "unknown",
    ):
        plan = derive_windows(
            train_start=train_start, train_end=train_end, eval_start=eval_start, eval_end=eval_end,
            schedule_time=schedule_time, train_days=train_days,
            eval_days=eval_days,
        )  # fmt: skip
        _sized(plan, "windows", "derive windows")
        windows = {name: plan.outputs[name] for name in ("train_start", "train_end",
                                                         "eval_start", "eval_end")}  # fmt: skip
        fetch = fetch_features(feature_repo=feature_repo, feature_service=feature_service,
                               dataset_yaml=dataset_yaml, **windows)  # fmt: skip
        _mount(_sized(fetch, "fetch", "fetch features"), (DATA_PVC, DATA_MOUNT))
        fetch.set_caching_options(
            False
        )  # reads the offline store, which changes under the same inputs
        check = validate_features(
            train_data=fetch.outputs["train_data"], eval_data=fetch.outputs["eval_data"],
            dataset_yaml=dataset_yaml, **windows,
        )  # fmt: skip
        _sized(check, "validate", "validate data")
        train = train_model(
            train_data=fetch.outputs["train_data"],
            config_yaml=config_yaml,
            dataset_yaml=dataset_yaml,
            nproc_per_node=nproc_per_node,
        ).after(check)
        _sized(train, "train", "train AITM")
        train.set_retry(num_retries=2, backoff_duration="60s", backoff_factor=2.0)  # a lost node
        evaluation = evaluate_model(
            model=train.outputs["model"],
            eval_data=fetch.outputs["eval_data"],
            config_yaml=config_yaml,
            dataset_yaml=dataset_yaml,
            bentoml_home=bentoml_home,
            oracle_data=oracle_data,
            eval_start=windows["eval_start"],
            eval_end=windows["eval_end"],
        )
        _mount(_sized(evaluation, "evaluate", "evaluate and gate"),
               (MODELS_PVC, MODELS_MOUNT), (DATA_PVC, DATA_MOUNT))  # fmt: skip
        evaluation.set_caching_options(
            False
        )  # compares with the incumbent, which a promotion moves
        with dsl.If(evaluation.outputs["Output"] == True, name=GATE_CONDITION):  # noqa: E712
            package = package_model(
                model=train.outputs["model"],
                decision=evaluation.outputs["decision"],
                reference=evaluation.outputs["reference"],
                config_yaml=config_yaml,
                dataset_yaml=dataset_yaml,
                bentoml_home=bentoml_home,
                bentofile=bentofile,
                feature_service=feature_service,
                git_revision=git_revision,
                run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                **windows,
            )
            _mount(_sized(package, "package", "package and promote"), (MODELS_PVC, MODELS_MOUNT))
            package.set_caching_options(
                False
            )  # writes the registry: a cache hit would promote nothing

    return training_pipeline


# What compile and submit use.
training_pipeline = build_training_pipeline()
# kfp 2.17.3's local runner cannot resolve the schedule-time placeholder (an IndexError in
# kfp.local.placeholder_utils): a local run gives its windows, so its DAG gets no schedule time.
local_training_pipeline = build_training_pipeline(schedule_time="")
