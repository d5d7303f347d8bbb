"""The training DAG: fetch -> validate -> train -> evaluate/gate -> (if promoted) package.

Validation failing raises, so nothing downstream runs; packaging runs only under
`dsl.If(gate == True)`, so a rejected model never reaches the model store.
"""

from kfp import dsl

from components.training import (
    evaluate_model,
    fetch_features,
    package_model,
    train_model,
    validate_features,
)

PIPELINE_NAME = "aitm-training"
GATE_CONDITION = "gate-passed"


@dsl.pipeline(name=PIPELINE_NAME, description="Train AITM from Feast, gate it, package it.")
def training_pipeline(
    feature_repo: str,
    train_start: str,
    train_end: str,
    eval_start: str,
    eval_end: str,
    bentoml_home: str,
    config_yaml: str = "",
    dataset_yaml: str = "",  # the dataset spec's YAML; empty: datasets/simulated.yaml
    feature_service: str = "",  # empty: the spec's (name_v<version>)
    nproc_per_node: int = 1,
    oracle_data: str = "",
    bentofile: str = "",
    git_revision: str = "unknown",
):
    windows = dict(train_start=train_start, train_end=train_end,
                   eval_start=eval_start, eval_end=eval_end)  # fmt: skip
    fetch = fetch_features(feature_repo=feature_repo, feature_service=feature_service,
                           dataset_yaml=dataset_yaml, **windows)  # fmt: skip
    fetch.set_display_name("fetch features")
    check = validate_features(
        train_data=fetch.outputs["train_data"], eval_data=fetch.outputs["eval_data"],
        dataset_yaml=dataset_yaml, **windows,
    )  # fmt: skip
    check.set_display_name("validate data")
    train = train_model(
        train_data=fetch.outputs["train_data"],
        config_yaml=config_yaml,
        dataset_yaml=dataset_yaml,
        nproc_per_node=nproc_per_node,
    ).after(check)
    train.set_display_name("train AITM")
    evaluation = evaluate_model(
        model=train.outputs["model"],
        eval_data=fetch.outputs["eval_data"],
        config_yaml=config_yaml,
        dataset_yaml=dataset_yaml,
        bentoml_home=bentoml_home,
        oracle_data=oracle_data,
        eval_start=eval_start,
        eval_end=eval_end,
    )
    evaluation.set_display_name("evaluate and gate")
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
        package.set_display_name("package and promote")
