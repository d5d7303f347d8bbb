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

from features.build import DATA_DIR
from features.fields import (
    ENTITIES,
    FEATURE_SERVICE,
    IMPRESSIONS_FILE,
    ROW_ID,
    TASKS,
    TIMESTAMP,
    entity_keys,
    model_fields,
)

if TYPE_CHECKING:
    from feast import FeatureStore

OnMissing = Literal["raise", "report"]


class MissingFeaturesError(RuntimeError):
    """Impressions for which the offline store returned no features."""


@dataclass(frozen=True)
class TrainingFrame:
    frame: pd.DataFrame  # model fields, labels, event_timestamp, impression_id
    missing: int  # impressions without a user or ad feature row in the TTL window
    missing_ids: tuple[int, ...]  # up to 20 of their impression ids

    def __len__(self) -> int:
        return len(self.frame)


def output_columns() -> list[str]:
    return [*model_fields(), *TASKS, TIMESTAMP, ROW_ID]


def _utc(value: datetime | str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def read_impressions(repo: str | Path, start=None, end=None) -> pd.DataFrame:
    """The entity frame of the repo, impressions with start <= event_timestamp < end."""
    path = Path(repo) / DATA_DIR / IMPRESSIONS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: run `python -m features build` first")
    condition = None
    if start is not None:
        condition = ds.field(TIMESTAMP) >= _utc(start).to_pydatetime()
    if end is not None:
        upper = ds.field(TIMESTAMP) < _utc(end).to_pydatetime()
        condition = upper if condition is None else condition & upper
    return ds.dataset(path, format="parquet").to_table(filter=condition).to_pandas()


def historical_features(
    store: FeatureStore,
    impressions: pd.DataFrame,
    *,
    service: str = FEATURE_SERVICE,
    on_missing: OnMissing = "raise",
) -> TrainingFrame:
    """Features of the service for each impression, as of its timestamp (point in time).

    `impressions` needs impression_id, the entity keys, event_timestamp, and the request
    context and labels that are copied to the output. Output rows are sorted by
    (event_timestamp, impression_id); columns are `output_columns()`.
    """
    if on_missing not in ("raise", "report"):
        raise ValueError(f"on_missing must be 'raise' or 'report', got {on_missing!r}")
    if impressions[ROW_ID].duplicated().any():
        raise ValueError(f"{ROW_ID} must be unique in the entity frame")
    entity_frame = impressions[[ROW_ID, *entity_keys(), TIMESTAMP]]
    feature_service = store.get_feature_service(service)
    job = store.get_historical_features(entity_df=entity_frame, features=feature_service)
    fetched = job.to_df()
    feature_names = [f for e in ENTITIES for f in e.features]
    unexpected = sorted(set(feature_names) - set(fetched.columns))
    if unexpected:
        raise RuntimeError(f"feature service {service!r} returned no columns {unexpected}")

    fetched = fetched[[ROW_ID, *feature_names]]
    frame = impressions.drop(columns=[c for c in feature_names if c in impressions.columns])
    frame = frame.merge(fetched, on=ROW_ID, how="left", validate="one_to_one", indicator=True)
    lost = frame["_merge"] == "left_only"
    no_row = pd.Series(False, index=frame.index)
    for spec in ENTITIES:  # key unknown: Feast keeps the row with every feature null
        no_row |= frame[list(spec.features)].isna().all(axis=1)
    missing = lost | no_row
    missing_ids = tuple(int(i) for i in frame.loc[missing, ROW_ID].sort_values().head(20))
    frame = frame[output_columns()].sort_values([TIMESTAMP, ROW_ID], ignore_index=True)
    n_missing = int(missing.sum())
    if n_missing and on_missing == "raise":
        raise MissingFeaturesError(
            f"{n_missing} of {len(impressions)} impressions have no user or ad features in the "
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
    service: str = FEATURE_SERVICE,
    on_missing: OnMissing = "raise",
) -> TrainingFrame:
    """The training frame for impressions with start <= event_timestamp < end."""
    impressions = read_impressions(repo, start, end)
    if impressions.empty:
        raise ValueError(f"no impressions in [{start}, {end}) under {repo}")
    return historical_features(store, impressions, service=service, on_missing=on_missing)
