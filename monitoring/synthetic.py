"""Synthetic traffic for the monitoring layer, as service request rows, label records and (for
tests and benchmarks) whole log files and reference windows, with no server.

Two sources. `Traffic`: impressions from the simulator's world, with its drift knobs. The world
is the one a model was trained on (same seed and sizes: read back from the simulated folder's
oracle.json), so a clean period looks like the training data. Drift is switched on for sampling
only: the world's calibrated intercepts stay those of the undrifted world, so the clean period's
rates match the training data exactly. `SpecTraffic`: a funnel of any dataset spec (its fields,
numeric ones included, and its 2 to N steps, whatever their names), with a known true
probability per step, a shift of the inputs and a change of one step's rate.

Request rows carry each field as the service's /predict takes it: ints, strings, or floats for
numeric fields, null where the value is missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aitm.data import TRUE_PREFIX
from aitm.dataset import DEFAULT_SPEC, DatasetSpec
from aitm.schema import build_schema, infer_field_type, with_dataset
from aitm.simulator import DriftConfig, FunnelWorld, SimulationConfig
from monitoring.reference import NUMERIC, write_reference

TIMESTAMP = "event_timestamp"  # the impression time column of sampled frames


def simulator_spec() -> DatasetSpec:
    """The simulator's dataset spec (datasets/simulated.yaml): the names of `Traffic` frames."""
    return DatasetSpec.from_yaml(DEFAULT_SPEC)


def world_config(sim_dir: str | Path) -> SimulationConfig:
    """The simulation config a simulated folder was written with (its oracle.json)."""
    raw = json.loads((Path(sim_dir) / "oracle.json").read_text())["config"]
    return SimulationConfig.model_validate({**raw, "drift": None})


class Traffic:
    """Impressions of one simulated world, clean or drifted, day by day."""

    def __init__(self, config: SimulationConfig, seed: int = 1_000) -> None:
        self.config = config.model_copy(update={"drift": None})
        self.world = FunnelWorld(self.config)  # intercepts calibrated without drift
        self.rng = np.random.default_rng(seed)

    def sample(self, rows: int, day: float, drift: DriftConfig | None = None) -> pd.DataFrame:
        """`rows` impressions spread over simulated day `day` (its hourly traffic curve).

        A drift takes effect from its start_day; pass start_day <= day to drift this sample.
        """
        self.world.config = self.config.model_copy(update={"drift": drift})
        try:
            frac = np.sort(self.rng.uniform(0.0, 1.0, rows))
            cdf = self.world.day_fraction_cdf
            warped = np.interp(frac, cdf, np.linspace(0.0, 1.0, len(cdf)))
            seconds = (day + warped) * 86_400.0
            return self.world.sample(self.rng, seconds)
        finally:
            self.world.config = self.config


class SpecTraffic:
    """Impressions of a synthetic funnel named by a dataset spec: every field of the spec
    (entity keys with `key_values` ids, other categories with `values` each, integers or, where
    the spec types them so, strings; numeric fields standard normal with a share missing),
    every step in funnel order.

    Step t converts with a conditional probability q_t(x) (a logistic model of the fields), so
    the end-to-end probability is p_t = q_1 ... q_t and the labels are nested (a row converts
    at step t only if it converted at t - 1). `true_p_<task>` holds p_t: a calibrated 'model'.
    """

    def __init__(self, spec: DatasetSpec, seed: int = 0, *, values: int = 6,
                 key_values: int = 500, step_rate: float = 0.6,
                 missing: float = 0.02) -> None:  # fmt: skip
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        world = np.random.default_rng(seed + 10_000)  # effects fixed per world
        keys = set(spec.keys)
        self.numeric = [f for f in spec.fields if f in spec.numeric]
        self.sizes = {f: key_values if f in keys else values
                      for f in spec.fields if f not in self.numeric}  # fmt: skip
        self.weights = {f: world.dirichlet(np.full(n, 2.0)) for f, n in self.sizes.items()}
        steps = len(spec.tasks)
        self.effects = {f: world.normal(0.0, 0.4, (n, steps)) for f, n in self.sizes.items()}
        self.slopes = {f: world.normal(0.0, 0.3, steps) for f in self.numeric}
        self.intercept = np.log(step_rate / (1.0 - step_rate))
        self.missing = missing

    def sample(self, rows: int, start: str | pd.Timestamp, *, hours: float = 24.0,
               shift: float = 0.0, rate_factor: Mapping[str, float] | None = None,
               ) -> pd.DataFrame:  # fmt: skip
        """`rows` impressions spread over `hours` from `start`.

        `shift` in [0, 1] moves the inputs: that share of each categorical field's values come
        from the reverse of its usual distribution, and numeric fields move by `shift` standard
        deviations. `rate_factor` {task: f} multiplies that step's conditional rate in the
        labels only: the true probabilities stay the undrifted world's, as a deployed model's
        would.
        """
        rng, spec = self.rng, self.spec
        frame = pd.DataFrame(index=pd.RangeIndex(rows))
        logits = np.full((rows, len(spec.tasks)), self.intercept)
        for name in spec.fields:
            if name in self.numeric:
                values = rng.normal(shift, 1.0, rows)
                logits += np.outer(np.clip(values, -3, 3), self.slopes[name])
                values[rng.random(rows) < self.missing] = np.nan
                frame[name] = values
                continue
            weights = self.weights[name]
            drifted = (1.0 - shift) * weights + shift * weights[::-1]
            codes = rng.choice(len(weights), size=rows, p=drifted / drifted.sum())
            logits += self.effects[name][codes]
            declared_str = spec.field_type(name) == "str"
            frame[name] = np.char.add(f"{name}-", codes.astype(str)) if declared_str else codes
        step = 1.0 / (1.0 + np.exp(-logits))  # (N, T) conditional rates
        factors = np.array([(rate_factor or {}).get(t, 1.0) for t in spec.tasks])
        observed = np.clip(step * factors, 0.0, 1.0)
        converted = np.cumprod(rng.random(step.shape) < observed, axis=1)
        true_p = np.cumprod(step, axis=1)
        for t, task in enumerate(spec.tasks):
            frame[task] = converted[:, t].astype(np.int64)
            frame[TRUE_PREFIX + task] = true_p[:, t]
        seconds = np.sort(rng.uniform(0.0, hours * 3_600.0, rows))
        frame[TIMESTAMP] = pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s")
        return frame


def field_kind(frame: pd.DataFrame, name: str, spec: DatasetSpec | None = None) -> str:
    """How field `name` travels in a request: "int", "str" or (numeric) "float". The spec's
    declared type wins; else it is inferred from the column, as training infers it (a column
    of non-integral numbers is numeric)."""
    declared = spec.field_type(name) if spec is not None else None
    if declared:
        return declared
    column = frame[name]
    if pd.api.types.is_float_dtype(column.dtype):
        values = column.dropna()
        if not (values == np.floor(values)).all():
            return NUMERIC
    return infer_field_type(name, column)


def json_values(column: pd.Series, kind: str) -> list[Any]:
    """A column as JSON values of one kind; missing values as None."""
    present = column.notna().to_numpy()
    values = column.astype(object).to_numpy()
    cast = {"int": int, NUMERIC: float}.get(kind, str)
    return [cast(v) if ok else None for v, ok in zip(values, present)]


def request_rows(
    frame: pd.DataFrame, fields: Sequence[str], kinds: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """/predict rows of `fields`: raw values as JSON types (`kinds`: field -> int, str or
    float; missing kinds are inferred from the column)."""
    columns = {
        name: json_values(frame[name], (kinds or {}).get(name) or field_kind(frame, name))
        for name in fields
    }
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def spec_rows(frame: pd.DataFrame, spec: DatasetSpec) -> list[dict[str, Any]]:
    """/predict rows of the spec's fields, each as the spec types it (`field_kind`)."""
    return request_rows(frame, spec.fields, {f: field_kind(frame, f, spec) for f in spec.fields})


def label_records(
    frame: pd.DataFrame, keys: list[tuple[str, int]], tasks: list[str], labelled_at: str
) -> list[dict[str, Any]]:
    """One label record per impression, keyed by the (request_id, row) it was served under."""
    labels = frame[list(tasks)].to_numpy()
    return [
        {"request_id": rid, "row": row, "labelled_at": labelled_at,
         **{t: int(v) for t, v in zip(tasks, values)}}
        for (rid, row), values in zip(keys, labels)
    ]  # fmt: skip


def write_log_files(
    frame: pd.DataFrame,
    probs: np.ndarray,
    tasks: list[str],
    log_dir: str | Path,
    labels_dir: str | Path | None,
    *,
    model_version: str = "aitm:synthetic",
    label_share: float = 1.0,
    seed: int = 0,
    rows_per_file: int = 250_000,
    name: str = "synthetic",
    spec: DatasetSpec | None = None,
) -> int:
    """Log files as the service writes them (one record per impression, timestamped at the
    impression's time, holding the fields of `spec`: default the simulator's) and label files
    for a share of them. For tests and benchmarks."""
    spec = spec or simulator_spec()
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    rows = spec_rows(frame, spec)
    stamps = frame[TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").tolist()
    ids = [f"{name}-{i:09d}" for i in range(len(frame))]
    for part, lo in enumerate(range(0, len(frame), rows_per_file)):
        hi = min(lo + rows_per_file, len(frame))
        with (log_dir / f"predictions-{name}-{part:05d}.jsonl").open("w") as out:
            for i in range(lo, hi):
                record = {
                    "request_id": ids[i], "row": 0, "timestamp": stamps[i],
                    "model_version": model_version, "features": rows[i],
                    "probabilities": dict(zip(tasks, map(float, probs[i]))), "endpoint": "predict",
                }  # fmt: skip
                out.write(json.dumps(record) + "\n")
    if labels_dir is not None:
        keep = np.random.default_rng(seed).random(len(frame)) < label_share
        chosen = np.flatnonzero(keep)
        records = label_records(frame.iloc[chosen], [(ids[i], 0) for i in chosen], tasks, "")
        Path(labels_dir).mkdir(parents=True, exist_ok=True)
        with (Path(labels_dir) / f"labels-{name}.jsonl").open("w") as out:
            out.writelines(json.dumps(r) + "\n" for r in records)
    return len(frame)


def true_probabilities(frame: pd.DataFrame, tasks: list[str]) -> np.ndarray:
    """The simulator's true end-to-end probabilities: a perfectly calibrated 'model'."""
    return frame[[TRUE_PREFIX + t for t in tasks]].to_numpy(dtype=np.float64)


def write_true_probability_reference(
    out: str | Path,
    reference: pd.DataFrame,
    tasks: list[str],
    spec: DatasetSpec | None = None,
) -> Path:
    """A reference window scored by the true probabilities, for tests and benchmarks that need
    no trained model. Its schema is built as training builds one from `spec` (default the
    simulator's) and carries the spec, as a trained model's does."""
    spec = spec or simulator_spec()
    schema = build_schema(reference, spec.fields, tasks, numeric=list(spec.numeric))
    schema = with_dataset(schema, spec)
    return write_reference(out, reference, true_probabilities(reference, tasks), schema,
                           {"model_tag": "aitm:true-probabilities"})  # fmt: skip
