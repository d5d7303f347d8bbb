"""`python -m monitoring`: run (the job), replay (traffic). The job as a kfp pipeline runs
from `python -m pipelines monitor`.

Exit codes of `run`: 0 every test passed, 1 a test failed (alert; with --on-fail-retrain and a
failed drift test, the training pipeline command was launched), 2 bad input. `replay` sends the
simulator's traffic (--world) or a dataset spec's table (--dataset); exit 2 on a bad spec.
Evidently and httpx are imported inside the commands that use them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aitm.cli import command_app, fail

app = command_app("AITM monitoring: Evidently reports over logged predictions, traffic replay.")


DatasetOption = Annotated[
    Path | None,
    typer.Option(help="Dataset spec of the promoted model (default $AITM_DATASET or the "
                 "simulator's): names the model whose reference --bentoml-home holds."),
]  # fmt: skip


def resolve_window(start: str | None, end: str | None, window_hours: float | None):
    from monitoring.logs import Window

    if start and end:
        return Window.parse(start, end)
    if window_hours:
        return Window.last_hours(window_hours)
    raise ValueError("give --start and --end, or --window-hours")


@app.command("run")
def run_command(
    log_dir: Annotated[Path, typer.Option(help="Prediction log folder of the service.")],
    out: Annotated[Path, typer.Option(help="Folder for report.html and summary.json.")],
    labels_dir: Annotated[Path | None, typer.Option(help="Label files (JSON lines).")] = None,
    reference: Annotated[Path | None, typer.Option(help="Reference folder.")] = None,
    bentoml_home: Annotated[
        Path | None, typer.Option(help="The promoted model's reference (default $BENTOML_HOME).")
    ] = None,
    dataset: DatasetOption = None,
    start: Annotated[str | None, typer.Option(help="Window start (ISO time, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end, exclusive.")] = None,
    window_hours: Annotated[float | None, typer.Option(help="Or: the last N hours.")] = None,
    workspace: Annotated[Path | None, typer.Option(help="Evidently workspace (snapshot).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML of MonitoringConfig.")] = None,
    on_fail_retrain: Annotated[
        bool, typer.Option(help="Launch the training pipeline when a drift test fails.")
    ] = False,
    retrain_command: Annotated[
        str | None, typer.Option(help="Default $AITM_RETRAIN_COMMAND, else `make run`'s job.")
    ] = None,
) -> None:
    """Monitor one window of logged predictions against the reference; exit 1 on a failed test."""
    from monitoring.config import MonitoringConfig
    from monitoring.job import JobPaths, JobSettings, reference_for, retrain, run_job

    try:
        window = resolve_window(start, end, window_hours)
        settings = MonitoringConfig.from_yaml(config)
        reference = reference_for(reference, bentoml_home, dataset)
        paths = JobPaths(log_dir, labels_dir, reference, out, workspace)
        result = run_job(paths, window, settings)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    typer.echo(result.describe())
    typer.echo(f"report: {out / 'report.html'}\nsummary: {out / 'summary.json'}")
    if result.passed:
        return
    if on_fail_retrain and result.drift_failed:
        command = retrain_command or JobSettings().retrain_command
        typer.echo(f"a drift test failed: launching the training pipeline: {command}", err=True)
        code = retrain(command)
        typer.echo(f"training pipeline exited with {code}", err=True)
    raise typer.Exit(code=1)


@app.command("replay")
def replay_command(
    url: Annotated[str, typer.Option(help="The running service, e.g. http://127.0.0.1:3000.")],
    out: Annotated[Path, typer.Option(help="replay.json: the periods' wall-clock windows.")],
    world: Annotated[
        Path | None, typer.Option(help="Simulated folder the model was trained on.")
    ] = None,
    dataset: Annotated[
        Path | None, typer.Option(help="Or: a dataset spec (YAML); its table's rows are sent.")
    ] = None,
    split: Annotated[str, typer.Option(help="--dataset: part of a train/val/test table.")] = "test",
    rows: Annotated[
        int | None, typer.Option(help="--dataset: rows to send (default the table's; more cycle).")
    ] = None,
    shuffle_seed: Annotated[
        int | None, typer.Option(help="--dataset: shuffle the rows first (default table order).")
    ] = None,
    clean_rows: Annotated[int, typer.Option()] = 20_000,
    drift_rows: Annotated[int, typer.Option()] = 20_000,
    day: Annotated[float, typer.Option(help="Simulated day of the clean period.")] = 29,
    user_shift: Annotated[float, typer.Option(help="Share of traffic from a new cohort.")] = 0.5,
    step: Annotated[str, typer.Option(help="Step whose conversion rate changes.")] = "approval",
    rate_factor: Annotated[float, typer.Option(help="Multiplies that step's rate.")] = 0.4,
    labels_dir: Annotated[Path | None, typer.Option(help="Where labels are written.")] = None,
    label_share: Annotated[float, typer.Option(help="Share of rows whose labels arrive.")] = 1.0,
    label_delay: Annotated[float, typer.Option(help="Seconds before labels arrive.")] = 0.0,
    batch: Annotated[int, typer.Option(help="Rows per /predict request.")] = 500,
    seed: Annotated[int, typer.Option()] = 1_000,
) -> None:
    """Send rows to /predict and write their labels later: a clean then a drifted period of
    simulated impressions (--world), or the rows of a dataset spec's table (--dataset)."""
    import httpx

    from monitoring.replay import replay, replay_spec, save

    if (world is None) == (dataset is None):
        fail("give one of --world (the simulator) or --dataset (a dataset spec)")
    try:
        if dataset is not None:
            from aitm.dataset import load_spec

            summary = replay_spec(url, load_spec(dataset), split=split, rows=rows,
                                  shuffle_seed=shuffle_seed, labels_dir=labels_dir,
                                  label_share=label_share, label_delay=label_delay, batch=batch,
                                  seed=seed)  # fmt: skip
        else:
            summary = replay(url, world, clean_rows=clean_rows, drift_rows=drift_rows, day=day,
                             user_shift=user_shift, step=step, rate_factor=rate_factor,
                             labels_dir=labels_dir, label_share=label_share,
                             label_delay=label_delay, batch=batch, seed=seed)  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:  # a bad spec or table (SpecError, DataError)
        fail(str(exc))
    except (RuntimeError, httpx.HTTPError) as exc:  # the service refused the rows, or is down
        fail(f"{url}: {exc}")
    save(summary, out)
    typer.echo(json.dumps(summary, indent=2))


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="python -m monitoring")
