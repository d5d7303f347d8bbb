"""The training pipeline's components: thin wrappers over the workflow package's steps.

kfp reads the annotations at decoration time, so no `from __future__ import annotations`.
Each body parses its inputs, calls one workflow function and records outputs; imports sit
inside the bodies because kfp ships only the function's source. The image holds the project:
no packages_to_install, and no `pip install kfp` at task start (install_kfp_package=False).
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components import AITM_IMAGE


@dsl.component(base_image=AITM_IMAGE, install_kfp_package=False)
def derive_windows(
    train_start: str,
    train_end: str,
    eval_start: str,
    eval_end: str,
    schedule_time: str,
    train_days: int,
    eval_days: int,
) -> NamedTuple(
    "Windows", [("train_start", str), ("train_end", str), ("eval_start", str), ("eval_end", str)]
):
    """The run's windows: the explicit ones if all four are given, else derived from the
    (recurring) run's scheduled time."""
    from collections import namedtuple

    from workflow.prepare import pipeline_windows

    explicit = dict(train_start=train_start, train_end=train_end, eval_start=eval_start,
                    eval_end=eval_end)  # fmt: skip
    windows = pipeline_windows(explicit, schedule_time, train_days, eval_days)
    return namedtuple("Windows", list(windows))(**windows)


@dsl.component(base_image=AITM_IMAGE, install_kfp_package=False)
def fetch_features(
    feature_repo: str,
    train_start: str,
    train_end: str,
    eval_start: str,
    eval_end: str,
    feature_service: str,
    dataset_yaml: str,
    train_data: Output[Dataset],
    eval_data: Output[Dataset],
):
    """Training and held-out windows from Feast's offline store, as Parquet."""
    from workflow.fetch import fetch_windows
    from workflow.params import feature_service_of

    service = feature_service_of(dataset_yaml, feature_service)
    rows = fetch_windows(feature_repo, (train_start, train_end), (eval_start, eval_end),
                               train_data.path, eval_data.path, service, dataset_yaml)  # fmt: skip
    train_data.metadata.update(rows=rows["train"], start=train_start, end=train_end)
    eval_data.metadata.update(rows=rows["eval"], start=eval_start, end=eval_end)


@dsl.component(base_image=AITM_IMAGE, install_kfp_package=False)
def validate_features(
    train_data: Input[Dataset],
    eval_data: Input[Dataset],
    train_start: str,
    train_end: str,
    eval_start: str,
    eval_end: str,
    dataset_yaml: str,
    data_docs: Output[HTML],
    validation: Output[Artifact],
):
    """Great Expectations on both windows; raises (stopping the pipeline) on failure. The data
    docs are one HTML file (what the KFP UI renders), the summary JSON beside them."""
    from workflow.validate import validate_windows

    summary = validate_windows(train_data.path, eval_data.path, data_docs.path,
                               (train_start, train_end), (eval_start, eval_end),
                               dataset_yaml, summary_file=validation.path)  # fmt: skip
    data_docs.metadata.update(success=summary["success"])
    validation.metadata.update(success=summary["success"])


@dsl.component(base_image=AITM_IMAGE, install_kfp_package=False)
def train_model(
    train_data: Input[Dataset],
    config_yaml: str,
    dataset_yaml: str,
    nproc_per_node: int,
    model: Output[Model],
):
    """Train AITM and write the self-describing artifact folder (the spec inside)."""
    from workflow.train import train_model

    summary = train_model(config_yaml, train_data.path, model.path, nproc_per_node,
                          dataset_yaml)  # fmt: skip
    model.metadata.update(best_epoch=summary["best_epoch"], train_rows=summary["train_rows"])


@dsl.component(base_image=AITM_IMAGE, install_kfp_package=False)
def evaluate_model(
    model: Input[Model],
    eval_data: Input[Dataset],
    config_yaml: str,
    dataset_yaml: str,
    bentoml_home: str,
    oracle_data: str,
    eval_start: str,
    eval_end: str,
    metrics: Output[Metrics],
    report: Output[Markdown],
    decision: Output[Artifact],
    reference: Output[Dataset],
) -> bool:
    """Candidate vs the promoted incumbent on the same window; returns the gate's verdict.
    Also writes the monitoring reference (the window, the candidate's predictions, labels)."""
    from aitm.evaluation import finite
    from workflow import evaluate

    outcome = evaluate.evaluate_and_gate(model.path, eval_data.path, config_yaml, bentoml_home,
                                         oracle_data, dataset_yaml)  # fmt: skip
    for name, value in finite(evaluate.outcome_metrics(outcome)).items():
        metrics.log_metric(name, value)
    with open(report.path, "w") as handle:
        handle.write(evaluate.evaluation_markdown(outcome, (eval_start, eval_end)))
    evaluate.write_outcome(outcome, decision.path)
    decision.metadata.update(promote=outcome.decision.promote)
    window = (eval_start, eval_end)
    rows = evaluate.save_reference(model.path, eval_data.path, reference.path, window)
    reference.metadata.update(**rows)
    return outcome.decision.promote


@dsl.component(base_image=AITM_IMAGE, install_kfp_package=False)
def package_model(
    model: Input[Model],
    decision: Input[Artifact],
    reference: Input[Dataset],
    config_yaml: str,
    dataset_yaml: str,
    bentoml_home: str,
    bentofile: str,
    train_start: str,
    train_end: str,
    eval_start: str,
    eval_end: str,
    feature_service: str,
    git_revision: str,
    run: str,
    registered: Output[Artifact],
):
    """Into the BentoML model store, promoted, and a bento built if there is a bentofile."""
    import json

    from workflow.package import package_model
    from workflow.params import feature_service_of

    service = feature_service_of(dataset_yaml, feature_service)
    out = package_model(model.path, decision.path, bentoml_home, config_yaml=config_yaml,
                        train_window=(train_start, train_end), eval_window=(eval_start, eval_end),
                        feature_service=service, git_revision=git_revision, bentofile=bentofile,
                        reference_dir=reference.path, dataset_yaml=dataset_yaml,
                        run=run)  # fmt: skip
    with open(registered.path, "w") as handle:
        json.dump(out, handle, indent=2)
    registered.metadata.update(model_tag=out["model_tag"], bento=out["bento"] or "")
