"""`python -m features`: build Feast sources, apply, materialize, retrieve, look up, validate.

Feast and Great Expectations are imported inside the commands that use them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="AITM feature layer: Feast sources, retrieval, online lookup, data validation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RepoOption = Annotated[Path, typer.Option(help="The Feast repo folder.")]
VariantOption = Annotated[
    str,
    typer.Option(help="Store variant: sqlite (default), redis ($AITM_REDIS_CONNECTION), spark."),
]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _utc(text: str):
    import pandas as pd

    ts = pd.Timestamp(text)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@app.command()
def build(
    data: Annotated[Path, typer.Option(help="Simulated folder or an impression table.")],
    repo: RepoOption = Path("feature_repo"),
) -> None:
    """Write user/ad snapshot tables and the impression table under REPO/data/."""
    from aitm.data import DataError
    from features.build import build_sources

    try:
        summary = build_sources(data, repo)
    except DataError as error:
        _fail(str(error))
    typer.echo(summary.describe())


@app.command()
def apply(repo: RepoOption = Path("feature_repo"), variant: VariantOption = "sqlite") -> None:
    """`feast apply` for the chosen variant."""
    from features.store import FeatureStoreError
    from features.store import apply as feast_apply

    try:
        typer.echo(feast_apply(repo, variant))  # type: ignore[arg-type]
    except FeatureStoreError as error:
        _fail(str(error))


@app.command()
def materialize(
    start: Annotated[str, typer.Option(help="ISO time, e.g. 2025-12-01T00:00:00Z.")],
    end: Annotated[str, typer.Option(help="ISO time.")],
    repo: RepoOption = Path("feature_repo"),
    variant: VariantOption = "sqlite",
) -> None:
    """Load snapshots valid in [START, END] into the online store."""
    from features.store import materialize as run
    from features.store import open_store

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
) -> None:
    """The training frame of impressions in [START, END), by feature service aitm_v1."""
    from features.retrieval import MissingFeaturesError, training_frame
    from features.store import open_store

    store = open_store(repo, variant)  # type: ignore[arg-type]
    try:
        result = training_frame(
            store, repo, start, end, on_missing="report" if report_missing else "raise"
        )
    except MissingFeaturesError as error:
        _fail(str(error))
    out.parent.mkdir(parents=True, exist_ok=True)
    result.frame.to_parquet(out, index=False)
    typer.echo(f"{len(result):,} rows ({result.missing} without features) -> {out}")


@app.command()
def online(
    user: Annotated[int, typer.Option(help="user_id")],
    ads: Annotated[str, typer.Option(help="Comma-separated ad_ids.")],
    position: Annotated[int, typer.Option()] = 1,
    hour: Annotated[int, typer.Option()] = 12,
    channel: Annotated[str, typer.Option()] = "feed",
    repo: RepoOption = Path("feature_repo"),
    variant: VariantOption = "sqlite",
) -> None:
    """Model input rows for one user and candidate ads, from the online store."""
    from features.online import MissingEntityError, online_features
    from features.store import open_store

    ad_ids = [int(a) for a in ads.split(",") if a.strip()]
    context = {"position": position, "hour": hour, "channel": channel}
    try:
        frame = online_features(open_store(repo, variant), user, ad_ids, context)  # type: ignore[arg-type]
    except MissingEntityError as error:
        _fail(str(error))
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
) -> None:
    """Great Expectations checks of DATA against REFERENCE; exit 1 on failure."""
    import yaml

    from aitm.data import read_table
    from features.config import ValidationConfig
    from features.validation import validate as run

    settings = ValidationConfig.model_validate(
        yaml.safe_load(config.read_text()) or {} if config else {}
    )
    window = (start, end) if start and end else None
    result = run(
        read_table(data),
        read_table(reference),
        config=settings,
        window=window,  # type: ignore[arg-type]
        docs_dir=docs,
        raise_on_failure=False,
    )
    typer.echo(result.describe())
    if not result.success:
        raise typer.Exit(code=1)


def main() -> None:
    app()
