"""Training frames from the offline store, by feature service, every impression accounted for.

Feast's file offline store drops entity rows whose key has no feature row inside the TTL window
and returns the rest reordered. So the entity frame carries `impression_id`, the result is
merged back onto the impressions, and rows without features are counted: an error by default,
or reported (features left null) when asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
import pyarrow.dataset as ds

from aitm.dataset import ROW_ID, DatasetSpec
from features.build import DATA_DIR
from features.fields import IMPRESSIONS_FILE, FeastLayout, repo_spec

if TYPE_CHECKING:
    from feast import FeatureStore

OnMissing = Literal["raise", "report"]


class MissingFeaturesError(RuntimeError):
    """Impressions for which the offline store returned no features."""


@dataclass(frozen=True)
class TrainingFrame:
    frame: pd.DataFrame  # model fields, labels, timestamp, impression_id
    missing: int  # impressions without a feature row of some entity in the TTL window
    missing_ids: tuple[int, ...]  # up to 20 of their impression ids

    def __len__(self) -> int:
        return len(self.frame)


def output_columns(spec: DatasetSpec | None = None) -> list[str]:
    """Columns of a training frame: model fields, labels, timestamp, row id (`spec`: the
    default spec when not given)."""
    return list(_layout(spec).output_columns())


def _layout(spec: DatasetSpec | None, repo: str | Path | None = None) -> FeastLayout:
    return FeastLayout(spec or repo_spec(repo))


def _utc(value: datetime | str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def read_impressions(
    repo: str | Path, start=None, end=None, *, spec: DatasetSpec | None = None
) -> pd.DataFrame:
    """The entity frame of the repo, impressions with start <= timestamp < end (`spec`: the
    repo's own, from its dataset.yaml, when not given)."""
    path = Path(repo) / DATA_DIR / IMPRESSIONS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: run `python -m features build` first")
    ts = _layout(spec, repo).timestamp
    condition = None
    if start is not None:
        condition = ds.field(ts) >= _utc(start).to_pydatetime()
    if end is not None:
        upper = ds.field(ts) < _utc(end).to_pydatetime()
        condition = upper if condition is None else condition & upper
    return ds.dataset(path, format="parquet").to_table(filter=condition).to_pandas()


def historical_features(
    store: FeatureStore,
    impressions: pd.DataFrame,
    *,
    spec: DatasetSpec | None = None,
    service: str | None = None,
    on_missing: OnMissing = "raise",
) -> TrainingFrame:
    """Features of the service for each impression, as of its timestamp (point in time).

    `impressions` needs impression_id, the entity keys, the timestamp, and the request
    context and labels that are copied to the output. Output rows are sorted by
    (timestamp, impression_id); columns are `output_columns(spec)`. `spec` defaults to the
    store's repo's spec, `service` to the spec's feature service.
    """
    if on_missing not in ("raise", "report"):
        raise ValueError(f"on_missing must be 'raise' or 'report', got {on_missing!r}")
    layout = _layout(spec, store.repo_path)
    service = service or layout.feature_service
    ts = layout.timestamp
    if impressions[ROW_ID].duplicated().any():
        raise ValueError(f"{ROW_ID} must be unique in the entity frame")
    entity_frame = impressions[[ROW_ID, *layout.keys, ts]]
    feature_service = store.get_feature_service(service)
    job = store.get_historical_features(entity_df=entity_frame, features=feature_service)
    fetched = job.to_df()
    feature_names = [f for e in layout.stored for f in e.features]
    unexpected = sorted(set(feature_names) - set(fetched.columns))
    if unexpected:
        raise RuntimeError(f"feature service {service!r} returned no columns {unexpected}")

    fetched = fetched[[ROW_ID, *feature_names]]
    frame = impressions.drop(columns=[c for c in feature_names if c in impressions.columns])
    frame = frame.merge(fetched, on=ROW_ID, how="left", validate="one_to_one", indicator=True)
    lost = frame["_merge"] == "left_only"
    no_row = pd.Series(False, index=frame.index)
    for entity in layout.stored:  # key unknown: Feast keeps the row with every feature null
        no_row |= frame[list(entity.features)].isna().all(axis=1)
    missing = lost | no_row
    missing_ids = tuple(int(i) for i in frame.loc[missing, ROW_ID].sort_values().head(20))
    columns = list(layout.output_columns())
    frame = frame[columns].sort_values([ts, ROW_ID], ignore_index=True)
    n_missing = int(missing.sum())
    if n_missing and on_missing == "raise":
        names = " or ".join(e.name for e in layout.stored)
        raise MissingFeaturesError(
            f"{n_missing} of {len(impressions)} impressions have no {names} features in the "
            f"TTL window ({int(lost.sum())} dropped by the offline store, "
            f"{int((no_row & ~lost).sum())} with unknown keys); first {ROW_ID}s: "
            f"{list(missing_ids)}. Pass on_missing='report' to keep them with null features."
        )
    return TrainingFrame(frame=frame, missing=n_missing, missing_ids=missing_ids)


def training_frame(
    store: FeatureStore,
    repo: str | Path,
    start: datetime | str,
    end: datetime | str,
    *,
    spec: DatasetSpec | None = None,
    service: str | None = None,
    on_missing: OnMissing = "raise",
) -> TrainingFrame:
    """The training frame for impressions with start <= timestamp < end. `spec` defaults to
    the repo's (its dataset.yaml), `service` to the spec's feature service."""
    spec = spec or repo_spec(repo)
    impressions = read_impressions(repo, start, end, spec=spec)
    if impressions.empty:
        raise ValueError(f"no impressions in [{start}, {end}) under {repo}")
    return historical_features(
        store, impressions, spec=spec, service=service, on_missing=on_missing
    )
