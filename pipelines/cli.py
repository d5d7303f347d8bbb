"""`python -m pipelines`: main (end to end), run-local, monitor, compile, submit.

kfp, feast and bentoml are imported inside the commands that use them.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from aitm.cli import command_app, fail

app = command_app("AITM training pipeline: run end to end, run locally, compile, submit.")


# -- compile and submit ---------------------------------------------------------------------


def compile_pipeline(out: str | Path) -> Path:
    """Compile to IR YAML. The output depends only on the code (same bytes every time)."""
    from kfp import compiler

    from pipelines.training_pipeline import training_pipeline

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(training_pipeline, str(out))
    return out


def parse_params(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pipeline arguments; numbers and booleans are typed, the rest are strings."""
    import yaml

    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"pipeline arguments are KEY=VALUE, got {item!r}")
        try:
            parsed = yaml.safe_load(value) if value else value
        except yaml.YAMLError:
            parsed = value
        # Numbers and booleans as such; everything else (timestamps too) stays a string.
        scalar = isinstance(parsed, (bool, int, float))
        params[key.strip()] = parsed if scalar else value
    return params


@dataclass(frozen=True)
class Submission:
    """What to ask the KFP API for: a one-off run or a recurring (cron) run."""

    package: str
    arguments: dict[str, Any]
    experiment: str
    name: str
    cron: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cron is not None and len(self.cron.split()) not in (5, 6):
            raise ValueError(
                f"cron must have 5 or 6 fields (KFP accepts seconds first), got {self.cron!r}"
            )

    @property
    def recurring(self) -> bool:
        return self.cron is not None

    def run_kwargs(self) -> dict[str, Any]:
        return dict(pipeline_file=self.package, arguments=self.arguments,
                    run_name=self.name, experiment_name=self.experiment, **self.extra)  # fmt: skip

    def recurring_kwargs(self, experiment_id: str) -> dict[str, Any]:
        cron = self.cron if len(self.cron.split()) == 6 else f"0 {self.cron}"  # type: ignore[union-attr]
        return dict(experiment_id=experiment_id, job_name=self.name, cron_expression=cron,
                    pipeline_package_path=self.package, params=self.arguments,
                    max_concurrency=1, no_catchup=True, **self.extra)  # fmt: skip


def submit(submission: Submission, host: str) -> str:
    import kfp

    client = kfp.Client(host=host)
    if submission.recurring:
        experiment = client.create_experiment(submission.experiment)
        job = client.create_recurring_run(**submission.recurring_kwargs(experiment.experiment_id))
        return f"recurring run {job.recurring_run_id} ({submission.cron})"
    result = client.create_run_from_pipeline_package(**submission.run_kwargs())
    return f"run {result.run_id}"


@app.command("compile")
def compile_command(
    out: Annotated[Path, typer.Option(help="IR YAML to write.")] = Path(
        "artifacts/aitm_training_pipeline.yaml"
    ),
) -> None:
    """Compile the pipeline to Kubeflow IR YAML (image from $AITM_IMAGE).

    The package mounts the PVCs aitm-data at /data (fetch, evaluate) and aitm-models at /models
    (evaluate, package). Its defaults are the cluster's: feature_repo=/data/feature_repo (the
    applied Feast repo on aitm-data), bentoml_home=/models; the four windows empty, so they are
    derived from the run's scheduled time (train_days=27, eval_days=3)."""
    typer.echo(str(compile_pipeline(out)))


@app.command("submit")
def submit_command(
    host: Annotated[str, typer.Option(help="KFP API endpoint, e.g. http://localhost:8080.")],
    param: Annotated[list[str], typer.Option(help="Pipeline argument KEY=VALUE (repeat).")] = [],  # noqa: B006
    package: Annotated[Path | None, typer.Option(help="Compiled YAML; compiled if absent.")] = None,
    experiment: Annotated[str, typer.Option()] = "aitm",
    name: Annotated[str, typer.Option(help="Run or recurring-run name.")] = "aitm-training",
    cron: Annotated[
        str | None, typer.Option(help="Cron schedule for a recurring run, e.g. '0 3 * * *'.")
    ] = None,
) -> None:
    """Submit to a Kubeflow Pipelines cluster, once or on a cron schedule.

    Without --param the cluster defaults apply (see `compile`): the Feast repo and the model
    store on their volumes, and windows derived from the scheduled time, the eval_days whole UTC
    days before it and train_days before those (a one-off run: its creation time). Give all four
    of train_start/train_end/eval_start/eval_end to pin the windows (a backfill)."""
    try:
        arguments = parse_params(param)
        path = package or compile_pipeline(Path("artifacts/aitm_training_pipeline.yaml"))
        submission = Submission(str(path), arguments, experiment, name, cron)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(submit(submission, host))


# -- local runs -----------------------------------------------------------------------------


def _spec(path: Path | None):
    from aitm.dataset import SpecError, load_spec

    try:
        return load_spec(path)
    except SpecError as exc:
        fail(str(exc))


@app.command("run-local")
def run_local_command(
    feature_repo: Annotated[Path, typer.Option(help="Applied Feast repo with built sources.")],
    train_start: Annotated[str, typer.Option()],
    train_end: Annotated[str, typer.Option()],
    eval_start: Annotated[str, typer.Option()],
    eval_end: Annotated[str, typer.Option()],
    bentoml_home: Annotated[Path, typer.Option(help="BentoML store.")] = Path("artifacts/bentoml"),
    pipeline_root: Annotated[Path, typer.Option()] = Path("artifacts/pipeline/runs"),
    config: Annotated[Path | None, typer.Option(help="YAML of aitm.config.Config.")] = None,
    oracle_data: Annotated[str, typer.Option(help="Simulated folder (oracle AUC).")] = "",
    nproc_per_node: Annotated[int, typer.Option(help=">1: torchrun data-parallel.")] = 1,
    bentofile: Annotated[str, typer.Option(help="Default: serving/bentofile.yaml if any.")] = "",
    dataset: Annotated[
        Path | None, typer.Option(help="Dataset spec; default: the repo's dataset.yaml.")
    ] = None,
) -> None:
    """Run the pipeline locally (kfp SubprocessRunner) and print a summary."""
    from pipelines.local import run_training
    from workflow.package import git_revision

    built = feature_repo / "dataset.yaml"
    spec = _spec(dataset or (built if built.is_file() else None))
    arguments = dict(
        feature_repo=str(feature_repo.resolve()), train_start=train_start, train_end=train_end,
        eval_start=eval_start, eval_end=eval_end, bentoml_home=str(bentoml_home.resolve()),
        config_yaml=config.read_text() if config else "", dataset_yaml=spec.to_yaml(),
        nproc_per_node=nproc_per_node,
        oracle_data=oracle_data, bentofile=bentofile, git_revision=git_revision(),
    )  # fmt: skip
    summary = run_training(pipeline_root, arguments)
    typer.echo(summary.describe())
    if not summary.succeeded:
        raise typer.Exit(code=1)


@app.command("monitor")
def monitor_command(
    log_dir: Annotated[Path, typer.Option()],
    out: Annotated[Path, typer.Option(help="pipeline root of the local run")],
    start: Annotated[str, typer.Option()],
    end: Annotated[str, typer.Option()],
    labels_dir: Annotated[Path | None, typer.Option()] = None,
    reference: Annotated[Path | None, typer.Option()] = None,
    bentoml_home: Annotated[Path | None, typer.Option()] = None,
    dataset: Annotated[Path | None, typer.Option(help="Spec of the promoted model.")] = None,
    workspace: Annotated[Path | None, typer.Option()] = None,
    config: Annotated[Path | None, typer.Option()] = None,
    retrain_command: Annotated[
        str, typer.Option(help="Launched by the pipeline's retrain step when drift failed.")
    ] = "",
) -> None:
    """Run the monitoring job as a kfp pipeline locally (SubprocessRunner)."""
    import json

    from monitoring.job import reference_for
    from pipelines.local import run_monitoring

    try:
        reference = reference_for(reference, bentoml_home, dataset)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    arguments = dict(
        log_dir=str(log_dir.resolve()), labels_dir=str(labels_dir.resolve()) if labels_dir else "",
        reference=str(reference.resolve()), start=start, end=end,
        workspace=str(workspace.resolve()) if workspace else "",
        config_yaml=config.read_text() if config else "", retrain_command=retrain_command,
    )  # fmt: skip
    summary = run_monitoring(out, arguments)
    typer.echo(json.dumps(summary, indent=2, default=str))
    if not summary["passed"]:
        raise typer.Exit(code=1)


@dataclass
class Timer:
    seconds: dict[str, float] = field(default_factory=dict)
    overlapped: set[str] = field(default_factory=set)  # ran beside other steps

    @contextmanager
    def step(self, name: str):
        typer.echo(f"== {name}", err=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start
            typer.echo(f"== {name}: {self.seconds[name]:.1f} s", err=True)

    def describe(self) -> str:
        lines = [
            f"  {name:<26} {s:7.1f} s"
            + (" (beside the pipeline)" if name in self.overlapped else "")
            for name, s in self.seconds.items()
        ]
        wall = sum(s for name, s in self.seconds.items() if name not in self.overlapped)
        return "\n".join(["wall time per step:", *lines, f"  {'total (wall)':<26} {wall:7.1f} s"])


class Materializer(threading.Thread):
    """`feast materialize START END` in the background, started once the pipeline's fetch
    step has finished (or the pipeline has ended)."""

    def __init__(self, repo: Path, window: tuple[str, str], runs: Path) -> None:
        super().__init__(name="feast-materialize", daemon=True)
        self.repo, self.window, self.runs = repo, window, runs
        self.before = {p.name for p in runs.iterdir()} if runs.is_dir() else set()
        self.pipeline_done = threading.Event()
        self.seconds = 0.0
        self.error: RuntimeError | None = None

    def _fetch_done(self) -> bool:
        from pipelines.local import FETCH

        if not self.runs.is_dir():
            return False
        new = [p for p in self.runs.iterdir() if p.name not in self.before]
        return any((p / FETCH / "executor_output.json").is_file() for p in new)

    def run(self) -> None:
        from features.store import FeatureStoreError, feast_cli

        while not (self._fetch_done() or self.pipeline_done.wait(1.0)):
            pass
        start = time.perf_counter()
        try:
            feast_cli(self.repo, "sqlite", "materialize", *self.window)
        except FeatureStoreError as exc:  # reported by the caller after join()
            self.error = exc
        self.seconds = time.perf_counter() - start


def _run_with_materialize(timer: Timer, repo: Path, window: tuple[str, str], runs: Path,
                          arguments: dict[str, Any], overlap: bool):  # fmt: skip
    """The pipeline and `feast materialize`: side by side (once the fetch step is done, as
    only it reads Feast and materialize rewrites the registry file in place), or one after
    the other."""
    from features.store import feast_cli
    from pipelines.local import run_training

    if not overlap:
        with timer.step("feast materialize"):
            feast_cli(repo, "sqlite", "materialize", *window)
        with timer.step("pipeline (local kfp)"):
            return run_training(runs, arguments)
    with timer.step("pipeline (local kfp)"):
        loader = Materializer(repo, window, runs)
        loader.start()
        summary = run_training(runs, arguments)
        loader.pipeline_done.set()
    with timer.step("feast materialize (rest)"):
        loader.join()
    timer.seconds["feast materialize"] = loader.seconds
    timer.overlapped.add("feast materialize")
    if loader.error is not None:
        fail(f"feast materialize failed: {loader.error}")
    return summary


@app.command("main")
def main_command(
    rows: Annotated[
        int, typer.Option(help="Impressions to simulate if DATA is absent.")
    ] = 1_000_000,
    dataset: Annotated[
        Path | None, typer.Option(help="Dataset spec (YAML). Default: datasets/simulated.yaml.")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="The table, if not the spec's `table`.")] = None,
    work: Annotated[Path, typer.Option(help="Feast repo copy, pipeline root.")] = Path(
        "artifacts/pipeline"
    ),
    bentoml_home: Annotated[Path, typer.Option()] = Path("artifacts/bentoml"),
    config: Annotated[Path | None, typer.Option(help="YAML of aitm.config.Config.")] = None,
    nproc_per_node: Annotated[int, typer.Option(help=">1: torchrun data-parallel.")] = 1,
    bentofile: Annotated[str, typer.Option(help="Default: serving/bentofile.yaml if any.")] = "",
    overlap: Annotated[
        bool, typer.Option(help="Materialize the online store while the pipeline trains.")
    ] = True,
    train_start: Annotated[str | None, typer.Option(help="Override the derived windows.")] = None,
    train_end: Annotated[str | None, typer.Option()] = None,
    eval_start: Annotated[str | None, typer.Option()] = None,
    eval_end: Annotated[str | None, typer.Option()] = None,
) -> None:
    """End to end on a dataset spec: simulate (the default spec, if its table is absent),
    Feast build/apply/materialize, run the pipeline. A bad spec or table stops before any work
    (exit 2), leaving the promoted model as it was."""
    import pandas as pd

    from aitm.data import DataError
    from aitm.dataset import DEFAULT_SPEC, SpecError
    from features.store import apply
    from workflow.package import git_revision
    from workflow.prepare import build_repo, first_snapshot, run_windows

    timer = Timer()
    spec = _spec(dataset)
    data = data or spec.table_path()
    if (dataset is None or dataset.resolve() == DEFAULT_SPEC) and not data.exists():
        from aitm.simulator import SimulationConfig, simulate

        with timer.step("simulate"):
            simulate(SimulationConfig(rows=rows), data)
    config_yaml = config.read_text() if config else ""
    with timer.step("feast build"):
        try:
            repo, built = build_repo(spec, data, work, config_yaml)
        except (DataError, SpecError, ValueError) as exc:
            fail(str(exc))
        typer.echo(built.describe(), err=True)
    with timer.step("feast apply"):
        apply(repo)
    snapshot = (first_snapshot(repo).isoformat(),
                (built.end + pd.Timedelta(days=1)).isoformat())  # fmt: skip
    explicit = dict(train_start=train_start, train_end=train_end,
                    eval_start=eval_start, eval_end=eval_end)  # fmt: skip
    try:
        windows = run_windows(spec, repo, data, snapshot, explicit)
    except ValueError as exc:
        fail(str(exc))
    simulated = (data / "oracle.json").is_file()
    arguments = dict(
        feature_repo=str(repo.resolve()), bentoml_home=str(bentoml_home.resolve()),
        config_yaml=config_yaml, dataset_yaml=(repo / "dataset.yaml").read_text(),
        nproc_per_node=nproc_per_node, oracle_data=str(data.resolve()) if simulated else "",
        bentofile=bentofile, git_revision=git_revision(), **windows,
    )  # fmt: skip
    summary = _run_with_materialize(timer, repo, snapshot, work / "runs", arguments, overlap)
    typer.echo(summary.describe())
    typer.echo(timer.describe())
    if not summary.succeeded:
        raise typer.Exit(code=1)


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="python -m pipelines")
