"""`python -m pipelines`: main (end to end), run-local, compile, submit.

kfp, feast and bentoml are imported inside the commands that use them.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="AITM training pipeline: run end to end, run locally, compile, submit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ROOT = Path(__file__).resolve().parents[1]
FEATURE_REPO = ROOT / "feature_repo"


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


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
    """Compile the pipeline to Kubeflow IR YAML (image from $AITM_IMAGE)."""
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
    """Submit to a Kubeflow Pipelines cluster, once or on a cron schedule."""
    try:
        arguments = parse_params(param)
        path = package or compile_pipeline(Path("artifacts/aitm_training_pipeline.yaml"))
        submission = Submission(str(path), arguments, experiment, name, cron)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(submit(submission, host))


# -- local runs -----------------------------------------------------------------------------


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
    from aitm.dataset import SpecError, load_spec
    from pipelines.local import run_local
    from pipelines.steps import git_revision

    built = feature_repo / "dataset.yaml"
    try:
        spec = load_spec(dataset or (built if built.is_file() else None))
    except SpecError as exc:
        _fail(str(exc))
    arguments = dict(
        feature_repo=str(feature_repo.resolve()), train_start=train_start, train_end=train_end,
        eval_start=eval_start, eval_end=eval_end, bentoml_home=str(bentoml_home.resolve()),
        config_yaml=config.read_text() if config else "", dataset_yaml=spec.to_yaml(),
        nproc_per_node=nproc_per_node,
        oracle_data=oracle_data, bentofile=bentofile, git_revision=git_revision(),
    )  # fmt: skip
    summary = run_local(pipeline_root, arguments)
    typer.echo(summary.describe())
    if not summary.succeeded:
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


def windows_from_table(
    impressions: Path, timestamp: str, fraction: float, test_part: Path | None
) -> dict[str, str]:
    """Windows from a table's own time range: the evaluation window is its test/ part where it
    has one, else the latest `fraction` of the time range."""
    import pandas as pd

    times = pd.to_datetime(pd.read_parquet(impressions, columns=[timestamp])[timestamp], utc=True)
    first, last = times.min(), times.max()
    if test_part is not None:
        from aitm.data import read_table

        split = pd.to_datetime(read_table(test_part, columns=[timestamp])[timestamp], utc=True)
        split = split.min()
    else:
        split = first + (last - first) * (1.0 - fraction)
    end = last + pd.Timedelta(seconds=1)
    if not first < split < end:
        raise ValueError(f"cannot hold out a window of the time range {first} to {last}")
    iso = {k: v.isoformat() for k, v in dict(train_start=first, train_end=split,
                                             eval_start=split, eval_end=end).items()}  # fmt: skip
    return iso


def windows_of(oracle: dict[str, Any]) -> dict[str, str]:
    """Training window = the simulation's train+val days; evaluation window = its test days."""
    import pandas as pd

    cfg = oracle["config"]
    start = pd.Timestamp(cfg["start"])
    split = start + pd.Timedelta(days=cfg["days"] - cfg["test_days"])
    end = start + pd.Timedelta(days=cfg["days"])
    iso = {k: v.isoformat() for k, v in dict(train_start=start, train_end=split,
                                             eval_start=split, eval_end=end).items()}  # fmt: skip
    return iso


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

    from aitm.dataset import DEFAULT_SPEC, SpecError, load_spec
    from pipelines.local import run_local
    from pipelines.steps import git_revision

    timer = Timer()
    try:
        spec = load_spec(dataset)
    except SpecError as exc:
        _fail(str(exc))
    data = data or spec.table_path()
    if (dataset is None or dataset.resolve() == DEFAULT_SPEC) and not data.exists():
        from aitm.simulator import SimulationConfig, simulate

        with timer.step("simulate"):
            simulate(SimulationConfig(rows=rows), data)
    config_yaml = config.read_text() if config else ""
    repo = work / "feature_repo"
    with timer.step("feast build"):
        from aitm.data import DataError
        from features.build import build_sources

        try:
            from pipelines.steps import parse_config

            parse_config(config_yaml)  # a bad config, too, stops before any work
            staging = work / "feature_repo.new"  # the previous repo stays until this one builds
            if staging.exists():
                shutil.rmtree(staging)
            shutil.copytree(FEATURE_REPO, staging,
                            ignore=shutil.ignore_patterns("data", "__pycache__"))  # fmt: skip
            built = build_sources(spec, staging, data)
        except (DataError, SpecError, ValueError) as exc:
            _fail(str(exc))
        if repo.exists():
            shutil.rmtree(repo)
        staging.rename(repo)
        typer.echo(built.describe(), err=True)
    dataset_yaml = (repo / "dataset.yaml").read_text()  # the spec with every type resolved
    with timer.step("feast apply"):
        from features.store import apply

        apply(repo)
    window = (_first_snapshot(repo).isoformat(), (built.end + pd.Timedelta(days=1)).isoformat())
    explicit = dict(train_start=train_start, train_end=train_end,
                    eval_start=eval_start, eval_end=eval_end)  # fmt: skip
    oracle_file = data / "oracle.json"
    if all(explicit.values()):
        windows = explicit
    elif any(explicit.values()):
        _fail("give all four of --train-start/--train-end/--eval-start/--eval-end, or none")
    elif oracle_file.is_file():
        windows = windows_of(json.loads(oracle_file.read_text()))
    elif spec.timestamp is None:  # one snapshot time: the fetch step splits at random
        windows = dict(train_start=window[0], train_end=window[1],
                       eval_start=window[1], eval_end=window[1])  # fmt: skip
    else:
        from aitm.data import split_paths
        from features.build import DATA_DIR, IMPRESSIONS_FILE

        try:
            impressions = repo / DATA_DIR / IMPRESSIONS_FILE
            test_part = split_paths(data).get("test")
            windows = windows_from_table(impressions, spec.timestamp, spec.eval_fraction, test_part)
        except ValueError as exc:
            _fail(str(exc))
    arguments = dict(
        feature_repo=str(repo.resolve()), bentoml_home=str(bentoml_home.resolve()),
        config_yaml=config_yaml, dataset_yaml=dataset_yaml, nproc_per_node=nproc_per_node,
        oracle_data=str(data.resolve()) if oracle_file.is_file() else "", bentofile=bentofile,
        git_revision=git_revision(), **windows,
    )  # fmt: skip
    if overlap:
        # Only the fetch step reads Feast, and materialize rewrites the registry file in
        # place: start materializing once the fetch step is done, while the rest runs.
        with timer.step("pipeline (local kfp)"):
            loader = Materializer(repo, window, work / "runs")
            loader.start()
            summary = run_local(work / "runs", arguments)
            loader.pipeline_done.set()
        with timer.step("feast materialize (rest)"):
            loader.join()
        timer.seconds["feast materialize"] = loader.seconds
        timer.overlapped.add("feast materialize")
        if loader.error is not None:
            _fail(f"feast materialize failed: {loader.error}")
    else:
        with timer.step("feast materialize"):
            from features.store import feast_cli

            feast_cli(repo, "sqlite", "materialize", *window)
        with timer.step("pipeline (local kfp)"):
            summary = run_local(work / "runs", arguments)
    typer.echo(summary.describe())
    typer.echo(timer.describe())
    if not summary.succeeded:
        raise typer.Exit(code=1)


def _first_snapshot(repo: Path):
    """One second before the earliest row of the repo's Feast sources (materialize's start)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.build import DATA_DIR

    earliest = []
    for path in (repo / DATA_DIR).glob("*.parquet"):  # only the time columns are read
        schema = pq.read_schema(path)
        times = [f.name for f in schema if pa.types.is_timestamp(f.type)]
        for column in pq.read_table(path, columns=times).columns:
            earliest.append(pd.Timestamp(column.to_pandas().min()))
    start = min(earliest)
    start = start.tz_localize("UTC") if start.tzinfo is None else start
    return start - pd.Timedelta(seconds=1)


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="python -m pipelines")
