"""The Evidently workspace: one project per dataset, a dashboard of the funnel metrics (panels
named by the model's steps and fields), one snapshot per window. `evidently ui --workspace PATH`
serves it (`make dashboard`)."""

from __future__ import annotations

from pathlib import Path

from evidently.sdk.models import PanelMetric
from evidently.sdk.panels import line_plot_panel, text_panel
from evidently.ui.workspace import Workspace

from monitoring.metrics import ALL_PAIRS, pair_name
from monitoring.reference import prob_column

PROJECT = "AITM conversion funnel"
DEFAULT_DATASET = "aitm"  # the simulator's spec: its project keeps the plain name


def project_name(dataset: str | None) -> str:
    """The project of a dataset (spec name): each funnel gets its own dashboard."""
    return PROJECT if dataset in (None, DEFAULT_DATASET) else f"{PROJECT}: {dataset}"


def _metric(name: str, legend: str, **labels: str) -> PanelMetric:
    return PanelMetric(legend=legend, metric=name, metric_labels=labels)


def dashboard_panels(tasks: list[str], fields: list[str]) -> list:
    """The panels, in order: each plots one value per window (snapshot) over time."""
    pairs = [pair_name(a, b) for a, b in zip(tasks, tasks[1:])]
    return [
        text_panel("AITM monitoring", "One point per monitored window of logged predictions."),
        line_plot_panel("Label coverage", [_metric("LabelCoverage", "labelled share")],
                        size="half"),
        line_plot_panel("Share of drifted input fields",
                        [_metric("DriftedColumnsCount", "share", value_type="share")],
                        size="half"),
        line_plot_panel("Input field drift (Jensen-Shannon)",
                        [_metric("ValueDrift", f, column=f) for f in fields]),
        line_plot_panel("Prediction drift per step",
                        [_metric("ValueDrift", t, column=prob_column(t)) for t in tasks],
                        size="half"),
        line_plot_panel("Mean predicted probability per step",
                        [_metric("MeanValue", t, column=prob_column(t)) for t in tasks],
                        size="half"),
        line_plot_panel("Observed end-to-end conversion rate per step (labelled rows)",
                        [_metric("MeanValue", t, column=t) for t in tasks], size="half"),
        line_plot_panel("Conversion rate change vs reference",
                        [_metric("ConversionRateChange", t, label=t) for t in tasks],
                        size="half"),
        line_plot_panel("Calibration gap change vs reference",
                        [_metric("CalibrationGap", t, label=t) for t in tasks], size="half"),
        line_plot_panel("AUC per step", [_metric("StepAuc", t, label=t) for t in tasks],
                        size="half"),
        line_plot_panel("Funnel-order violations (share of rows)",
                        [_metric("MonotonicityViolations", p, pair=p)
                         for p in [ALL_PAIRS, *pairs]]),
    ]  # fmt: skip


def project_for(path: str | Path, tasks: list[str], fields: list[str], name: str = PROJECT):
    """The workspace and its project (created with the dashboard on first use)."""
    Path(path).mkdir(parents=True, exist_ok=True)
    workspace = Workspace(str(path))
    found = workspace.search_project(name)
    if found:
        return workspace, found[0]
    project = workspace.create_project(name, description="Drift, conversion rates, calibration "
                                       "and funnel order of the served AITM model")  # fmt: skip
    for panel in dashboard_panels(tasks, fields):
        project.dashboard.add_panel(panel)
    return workspace, project


def add_snapshot(
    path: str | Path, snapshot, tasks: list[str], fields: list[str], name: str = PROJECT
) -> str:
    """Store one window's snapshot (without its data) in project `name`; returns its id."""
    workspace, project = project_for(path, tasks, fields, name)
    workspace.add_run(project.id, snapshot, include_data=False)
    return str(project.id)
