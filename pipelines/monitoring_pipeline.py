"""The monitoring DAG: monitor one window -> (if a drift test failed) launch retraining.

No `from __future__ import annotations`: kfp reads the pipeline signature at decoration time.
Runs locally (`python -m pipelines monitor`) or compiles for a cluster, where the retrain step
would submit the training pipeline (`python -m pipelines submit ...` as its command).
"""

from kfp import dsl

from components.monitoring import monitor_window, retrain

PIPELINE_NAME = "aitm-monitoring"
MONITOR, RETRAIN = "monitor-window", "retrain"


@dsl.pipeline(name=PIPELINE_NAME, description="Monitor a window of logged AITM predictions.")
def monitoring_pipeline(
    log_dir: str,
    reference: str,
    start: str,
    end: str,
    labels_dir: str = "",
    workspace: str = "",
    config_yaml: str = "",
    retrain_command: str = "",
):
    check = monitor_window(log_dir=log_dir, labels_dir=labels_dir, reference=reference,
                           start=start, end=end, workspace=workspace,
                           config_yaml=config_yaml)  # fmt: skip
    check.set_display_name("monitor window")
    with dsl.If(check.outputs["Output"] == True, name="drift-failed"):  # noqa: E712
        retrain(command=retrain_command).set_display_name("launch retraining")
