"""The `aitm` command: simulate a funnel, train, evaluate."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer


def command_app(help: str) -> typer.Typer:
    """A Typer app the way every project CLI sets it up: plain errors, no shell completion."""
    return typer.Typer(
        help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
    )


app = command_app("AITM: end-to-end conversion probabilities for every step of a funnel.")


def fail(message: str) -> NoReturn:
    """Exit 2 with the message: the code every project CLI uses for bad input."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _load_config(path: Path | None, epochs: int | None):
    from aitm.config import Config

    config = Config.from_yaml(path) if path else Config()
    if epochs is not None:
        config = config.model_copy(
            update={"train": config.train.model_copy(update={"max_epochs": epochs})}
        )
        config = Config.model_validate(config.model_dump())
    return config


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Output folder (train/, val/, test/, oracle.json).")],
    rows: Annotated[int, typer.Option(help="Impressions to generate.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Seed of the world and of the traffic.")] = 0,
    days: Annotated[int, typer.Option(help="Days the impressions span.")] = 30,
    drift_day: Annotated[int | None, typer.Option(help="Day from which drift starts.")] = None,
    user_shift: Annotated[float, typer.Option(help="Share of traffic from a new cohort.")] = 0.0,
    drift_step: Annotated[str | None, typer.Option(help="Task whose rate changes.")] = None,
    rate_factor: Annotated[float, typer.Option(help="Multiplier of that step's rate.")] = 1.0,
) -> None:
    """Simulate a seeded financial-ads funnel with true probabilities, split by time."""
    from aitm.simulator import DriftConfig, SimulationConfig
    from aitm.simulator import simulate as run_simulation

    drift = None
    if drift_day is not None:
        drift = DriftConfig(
            start_day=drift_day, user_shift=user_shift, step=drift_step, rate_factor=rate_factor
        )
    try:
        config = SimulationConfig(rows=rows, seed=seed, days=days, drift=drift)
    except ValueError as exc:
        fail(str(exc))
    summary = run_simulation(config, out)
    typer.echo(
        json.dumps({k: summary[k] for k in ("rows", "positive_rate", "oracle_auc")}, indent=2)
    )


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="Model artifact folder to write.")],
    data: Annotated[
        Path | None,
        typer.Option(help="Simulated folder (train/, val/) or a table; default: the spec's table."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (see aitm.config).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override train.max_epochs.")] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(
            help="Dataset spec (YAML): the config's data section and the artifact's copy."
        ),
    ] = None,
) -> None:
    """Train a model and write a self-describing artifact. Runs data-parallel under torchrun."""
    from aitm.checkpoint import save_artifact
    from aitm.data import DataError, load_split, split_paths, time_split
    from aitm.dataset import load_spec
    from aitm.training import train as run_training

    try:
        cfg = _load_config(config, epochs)
        spec = None
        if dataset is not None:
            spec = load_spec(dataset)
            cfg = cfg.with_dataset(spec)
            data = data or spec.table_path()
        if data is None:
            fail("give --data (a table or a simulated folder) or --dataset (a spec)")
        splits = split_paths(data)
        if "train" in splits and "val" in splits:
            train_frame = load_split(splits["train"], cfg.data)
            val_frame = load_split(splits["val"], cfg.data)
        else:
            frame = load_split(data, cfg.data)
            train_frame, val_frame = time_split(frame, cfg.data.timestamp, seed=cfg.train.seed)
        result = run_training(cfg, train_frame, val_frame, dataset=spec)
    except (DataError, ValueError) as exc:
        fail(str(exc))
    if int(os.environ.get("RANK", "0")) != 0:
        return
    rows = {"train_rows": len(train_frame), "val_rows": len(val_frame),
            "world_size": int(os.environ.get("WORLD_SIZE", "1"))}  # fmt: skip
    save_artifact(result, out, metrics={"data": rows})  # the pipeline reads it back from here
    summary = {"model": str(out), "best_epoch": result.best_epoch, **rows,
               "samples_per_second": round(result.samples_per_second),
               "val_auc": result.validation.auc}  # fmt: skip
    typer.echo(json.dumps(summary, indent=2))


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Model artifact folder.")],
    data: Annotated[Path, typer.Option(help="Simulated folder (uses test/) or a table file.")],
) -> None:
    """Print one JSON object: auc, oracle_auc (if known), logloss, calibration, violation_rate."""
    from aitm.checkpoint import ArtifactError
    from aitm.data import DataError, encode, load_split, split_paths
    from aitm.evaluation import evaluate as run_evaluation
    from aitm.inference import Predictor

    try:
        predictor = Predictor.load(model)
        path = split_paths(data).get("test", data)
        frame = load_split(path, predictor.config.data)
        encoded = encode(frame, predictor.schema)
    except (ArtifactError, DataError, ValueError) as exc:
        fail(str(exc))
    probs = predictor.predict_encoded(encoded.x)
    result = run_evaluation(predictor.tasks, encoded.y, probs, encoded.true_p)
    out = result.to_dict()
    out.pop("rows")
    typer.echo(json.dumps({"rows": result.rows, **out}, indent=2))


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="aitm")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
