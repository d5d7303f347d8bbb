"""`python -m features`: build Feast sources, apply, materialize, retrieve, look up, validate.

Every command takes `--dataset PATH`, a dataset spec (default: datasets/simulated.yaml; for a
built repo, the spec it was built from); a spec that cannot be used exits 2 with its message.
Feast and Great Expectations are imported inside the commands that use them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aitm.cli import command_app, fail

app = command_app("AITM feature layer: Feast sources, retrieval, online lookup, data validation.")

RepoOption = Annotated[Path, typer.Option(help="The Feast repo folder.")]
VariantOption = Annotated[
    str,
    typer.Option(help="Store variant: sqlite (default), redis ($AITM_REDIS_CONNECTION), spark."),
]
DatasetOption = Annotated[
    Path | None,
    typer.Option(
        "--dataset",
        help="Dataset spec YAML (default: the repo's dataset.yaml, else datasets/simulated.yaml).",
    ),
]


def _spec(path: Path | None, repo: Path | None = None):
    """The spec at PATH, else the repo's own (its dataset.yaml), else the default; exit 2 if
    it cannot be used."""
    from aitm.dataset import SpecError, load_spec
    from features.fields import FeastLayout, repo_spec

    try:
        spec = load_spec(path) if path is not None else repo_spec(repo)
        FeastLayout(spec)
    except SpecError as error:
        fail(str(error))
    return spec


def _pairs(values: list[str], what: str) -> dict[str, str]:
    """NAME=VALUE options as a mapping; exit 2 on one without '='."""
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"{what}: expected NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _utc(text: str):
    import pandas as pd

    ts = pd.Timestamp(text)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@app.command()
def build(
    data: Annotated[
        Path | None, typer.Option(help="The table (default: the spec's `table`).")
    ] = None,
    repo: RepoOption = Path("feature_repo"),
    dataset: DatasetOption = None,
) -> None:
    """Write REPO/dataset.yaml, one snapshot table per entity and the impression table under
    REPO/data/."""
    from features.build import build_sources

    spec = _spec(dataset)  # a build starts from the given or default spec, not the repo's
    try:
        summary = build_sources(spec, repo, data)
    except ValueError as error:  # DataError and SpecError: the message names the column
        fail(str(error))
    typer.echo(summary.describe())


@app.command()
def apply(
    repo: RepoOption = Path("feature_repo"),
    variant: VariantOption = "sqlite",
    dataset: DatasetOption = None,
) -> None:
    """`feast apply` for the chosen variant (the repo's dataset.yaml, else --dataset, names the
    entities, views and feature service)."""
    import os

    from features.fields import DATASET_ENV
    from features.store import FeatureStoreError
    from features.store import apply as feast_apply

    _spec(dataset, repo)
    if dataset is not None:
        os.environ[DATASET_ENV] = str(dataset.resolve())
    try:
        typer.echo(feast_apply(repo, variant))  # type: ignore[arg-type]
    except FeatureStoreError as error:
        fail(str(error))


@app.command()
def materialize(
    start: Annotated[str, typer.Option(help="ISO time, e.g. 2025-12-01T00:00:00Z.")],
    end: Annotated[str, typer.Option(help="ISO time.")],
    repo: RepoOption = Path("feature_repo"),
    variant: VariantOption = "sqlite",
    dataset: DatasetOption = None,
) -> None:
    """Load snapshots valid in [START, END] into the online store."""
    from features.store import materialize as run
    from features.store import open_store

    _spec(dataset, repo)
    run(open_store(repo, variant), _utc(start), _utc(end))  # type: ignore[arg-type]


@app.command()
def retrieve(
    start: Annotated[str, typer.Option(help="First impression time (inclusive).")],
    end: Annotated[str, typer.Option(help="End of the window (exclusive).")],
    out: Annotated[Path, typer.Option(help="Parquet file for the training frame.")],
    repo: RepoOption = Path("feature_repo"),
    variant: VariantOption = "sqlite",
    report_missing: Annotated[
        bool, typer.Option(help="Keep impressions without features (null) and report the count.")
    ] = False,
    dataset: DatasetOption = None,
) -> None:
    """The training frame of impressions in [START, END), by the spec's feature service."""
    from features.retrieval import MissingFeaturesError, training_frame
    from features.store import open_store

    spec = _spec(dataset, repo)
    store = open_store(repo, variant)  # type: ignore[arg-type]
    try:
        result = training_frame(
            store, repo, start, end, spec=spec, on_missing="report" if report_missing else "raise"
        )
    except (MissingFeaturesError, ValueError) as error:
        fail(str(error))
    out.parent.mkdir(parents=True, exist_ok=True)
    result.frame.to_parquet(out, index=False)
    typer.echo(f"{len(result):,} rows ({result.missing} without features) -> {out}")


def _context_value(layout, name: str, text: str):
    """A request field's value typed as the spec says (a candidate-context field: one value per
    candidate, comma-separated)."""
    kind = layout.type_of(name)

    def cast(item: str):
        if kind == "int":
            return int(item)
        return float(item) if kind == "float" else item

    try:
        if name in layout.candidate_context:
            return [cast(v.strip()) for v in text.split(",")]
        return cast(text)
    except ValueError:
        fail(f"--context {name}={text!r}: not a{'n int' if kind == 'int' else ' ' + kind}")


@app.command()
def online(
    candidates: Annotated[str, typer.Option(help="Comma-separated candidate ids.")],
    key: Annotated[
        list[str], typer.Option(help="KEY=ID of a request entity, e.g. user_id=5 (repeat).")
    ] = [],  # noqa: B006 (typer reads the default; it is never mutated)
    context: Annotated[
        list[str],
        typer.Option(help="FIELD=VALUE of a request field (repeat); per-candidate: V1,V2,..."),
    ] = [],  # noqa: B006
    repo: RepoOption = Path("feature_repo"),
    variant: VariantOption = "sqlite",
    dataset: DatasetOption = None,
) -> None:
    """Model input rows for one request's entities and its candidates, from the online store."""
    from features.fields import FeastLayout
    from features.online import MissingEntityError, online_features
    from features.store import open_store

    spec = _spec(dataset, repo)
    layout = FeastLayout(spec)
    ids = [c.strip() for c in candidates.split(",") if c.strip()]
    fields = _pairs(context, "--context")
    unknown = sorted(set(fields) - set(layout.request_fields))
    if unknown:
        fail(f"--context: {unknown} are not request fields of {spec.name!r} "
              f"({list(layout.request_fields)})")  # fmt: skip
    values = {name: _context_value(layout, name, text) for name, text in fields.items()}
    try:
        frame = online_features(
            open_store(repo, variant),  # type: ignore[arg-type]
            _pairs(key, "--key"),
            ids,
            values,
            spec=spec,
        )
    except (MissingEntityError, ValueError) as error:
        fail(str(error))
    typer.echo(frame.to_string(index=False))


@app.command()
def validate(
    data: Annotated[Path, typer.Option(help="Frame to check (Parquet/CSV).")],
    reference: Annotated[Path, typer.Option(help="Reference (training) frame.")],
    docs: Annotated[Path, typer.Option(help="Folder for GE data docs HTML.")] = Path(
        "artifacts/data_docs"
    ),
    start: Annotated[str | None, typer.Option(help="Timestamps must be >= START.")] = None,
    end: Annotated[str | None, typer.Option(help="Timestamps must be <= END.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML of ValidationConfig.")] = None,
    dataset: DatasetOption = None,
) -> None:
    """Great Expectations checks of DATA against REFERENCE; exit 1 on failure."""
    import yaml

    from aitm.data import read_table
    from features.config import ValidationConfig
    from features.validation import validate as run

    spec = _spec(dataset)
    settings = ValidationConfig.model_validate(
        yaml.safe_load(config.read_text()) or {} if config else {}
    )
    window = (start, end) if start and end else None
    result = run(
        read_table(data),
        read_table(reference),
        config=settings,
        spec=spec,
        window=window,  # type: ignore[arg-type]
        docs_dir=docs,
        raise_on_failure=False,
    )
    typer.echo(result.describe())
    if not result.success:
        raise typer.Exit(code=1)


def main() -> None:
    app()
