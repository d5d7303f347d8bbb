"""Offline sources: Parquet snapshots of user and ad attributes, written by `features build`.

Every snapshot row holds an entity's attributes valid from its `event_timestamp` on. The file
offline store reads them as FileSources (paths relative to this repo). With
AITM_FEAST_OFFLINE=spark (and feature_store.spark.yaml) they are SparkSources instead, since
Feast's Spark offline store reads only SparkSources.
"""

import os
from pathlib import Path

from feast import FileSource
from feast.data_format import ParquetFormat

from features.fields import AD, TIMESTAMP, USER

_DATA = "data"

if os.environ.get("AITM_FEAST_OFFLINE", "file") == "spark":
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    _here = Path(__file__).resolve().parent / _DATA
    user_snapshots = SparkSource(
        name=f"{USER.name}_snapshots",
        path=str(_here / USER.snapshot_file),
        file_format="parquet",
        timestamp_field=TIMESTAMP,
    )
    ad_snapshots = SparkSource(
        name=f"{AD.name}_snapshots",
        path=str(_here / AD.snapshot_file),
        file_format="parquet",
        timestamp_field=TIMESTAMP,
    )
else:
    user_snapshots = FileSource(
        name=f"{USER.name}_snapshots",
        path=f"{_DATA}/{USER.snapshot_file}",
        file_format=ParquetFormat(),
        timestamp_field=TIMESTAMP,
    )
    ad_snapshots = FileSource(
        name=f"{AD.name}_snapshots",
        path=f"{_DATA}/{AD.snapshot_file}",
        file_format=ParquetFormat(),
        timestamp_field=TIMESTAMP,
    )
