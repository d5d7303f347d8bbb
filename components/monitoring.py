"""The monitoring pipeline's components: thin wrappers over monitoring.job.

Same rules as components/training.py: kfp only at module level, imports inside the bodies,
the project's image, nothing installed at task start.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Metrics, Output

from components import AITM_IMAGE


@dsl.component(base_image=AITM_IMAGE, install_kfp_package=False)
def monitor_window(
    log_dir: str,
    labels_dir: str,
    reference: str,
    start: str,
    end: str,
    workspace: str,
    config_yaml: str,
    report: Output[HTML],
    summary: Output[Artifact],
    metrics: Output[Metrics],
) -> bool:
    """The monitoring job on one window; returns True when a drift test failed."""
    import shutil

    from monitoring import job

    result = job.monitor(log_dir, labels_dir, reference, start, end, summary.path, workspace,
                         config_yaml)  # fmt: skip
    shutil.copyfile(f"{summary.path}/{job.REPORT}", report.path)
    for name, value in job.flat_metrics(result).items():
        metrics.log_metric(name, value)
    summary.metadata.update(passed=result.passed, failed=[t.name for t in result.failed])
    return result.drift_failed


@dsl.component(base_image=AITM_IMAGE, install_kfp_package=False)
def retrain(command: str, launched: Output[Artifact]):
    """Launch the training pipeline command (runs only when a drift test failed)."""
    import json

    from monitoring import job

    code = job.retrain(command) if command else None
    with open(launched.path, "w") as handle:
        json.dump({"command": command, "exit_code": code}, handle)
    if code:
        raise RuntimeError(f"the training pipeline command exited with {code}: {command}")
