"""Offline sources: one Parquet snapshot table per entity, written by `features build`.

Every snapshot row holds an entity's attributes valid from its timestamp on. The file offline
store reads them as FileSources, from this repo's `data/` (what `features build` writes), or from
the folder $AITM_FEAST_DATA names where a deployment keeps them apart from the code (k8s: the
data volume's /data/features; the image's repo is read-only). With AITM_FEAST_OFFLINE=spark
(and feature_store.spark.yaml) they are SparkSources instead, since Feast's Spark offline store
reads only SparkSources.
"""

import os
from pathlib import Path

from feast import FileSource
from feast.data_format import ParquetFormat

from features.fields import FeastLayout, repo_spec

_DATA = os.environ.get("AITM_FEAST_DATA") or "data"  # relative: to this repo
_HERE = Path(__file__).resolve().parent
_layout = FeastLayout(repo_spec(_HERE))

if os.environ.get("AITM_FEAST_OFFLINE", "file") == "spark":
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    sources = {
        e.name: SparkSource(
            name=e.source,
            path=str(_HERE / _DATA / e.snapshot_file),
            file_format="parquet",
            timestamp_field=e.timestamp,
        )
        for e in _layout.stored
    }
else:
    sources = {
        e.name: FileSource(
            name=e.source,
            path=f"{_DATA}/{e.snapshot_file}",
            file_format=ParquetFormat(),
            timestamp_field=e.timestamp,
        )
        for e in _layout.stored
    }

# Feast finds the objects a repo declares among its modules' globals.
globals().update({s.name: s for s in sources.values()})
