"""The served model: loaded from the store folder the registry resolved
(registry.store.serving_tag), and, while the service follows the promoted pointer, replaced by
the model a promote or rollback points at.

A replacement is loaded and checked in the watcher's own thread, never on a request's path: it
must load, speak the served request contract (the same dataset spec, fields, field types, tasks
and feature service) and answer a probe batch with finite probabilities in funnel order. Only
then is it swapped in, as one assignment of an immutable bundle; a request keeps the bundle it
started with. A model that fails is logged and counted, and the old one keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from aitm.checkpoint import ArtifactError
from aitm.dataset import DatasetSpec, SpecError
from aitm.inference import Predictor
from aitm.schema import FeatureSchema
from registry import store as registry
from serving.spec import check_expected, served_spec

logger = logging.getLogger(__name__)

PROBE_ROWS = 64
# Funnel order on the probe: a later step may exceed an earlier one by float noise only. The
# served model's own violations are counted per request (aitm_monotonicity_violations); a model
# that breaks the funnel on random rows is not one to swap in.
FUNNEL_TOLERANCE = 1e-6


class ModelRefusedError(ArtifactError):
    """A model that loads but may not replace the served one (another contract, bad outputs)."""


@dataclass(frozen=True)
class LoadedModel:
    tag: str
    predictor: Predictor


def load(tag: str, path: str | Path) -> LoadedModel:
    """Load a stored model folder; ArtifactError if it is missing or corrupted."""
    return LoadedModel(tag=tag, predictor=Predictor.load(path))


def contract(schema: FeatureSchema) -> dict[str, object]:
    """What a request relies on besides the dataset spec: field names and types, tasks in
    order, the feature service. Vocabularies and weights may change; the encoder is the
    model's own."""
    return {
        "fields": [(f.name, f.dtype) for f in schema.fields],
        "tasks": list(schema.tasks),
        "feature_service": schema.extra.get("feature_service"),
    }


def check_compatible(new: FeatureSchema, served: FeatureSchema, spec: DatasetSpec, tag: str):
    """SpecMismatchError unless `new` was trained on the served dataset `spec` (name and
    fingerprint); ModelRefusedError naming what differs unless it has the served contract."""
    check_expected(served_spec(new, tag), tag, spec)
    have, want = contract(new), contract(served)
    differ = [key for key in want if have[key] != want[key]]
    if differ:
        shown = "; ".join(f"{k}: {have[k]!r} instead of {want[k]!r}" for k in differ)
        raise ModelRefusedError(f"model {tag} changes the request contract ({shown})")


def probe_batch(schema: FeatureSchema, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """(rows, F) encoded rows, as serving.scoring.Encoder makes them: random vocabulary indices
    (the unknown one included), standard-normal numbers."""
    rng = np.random.default_rng(seed)
    dtype = np.float64 if schema.numeric_positions else np.int64
    columns = [
        rng.standard_normal(rows) if f.is_numeric else rng.integers(0, f.cardinality, rows)
        for f in schema.fields
    ]
    return np.ascontiguousarray(np.stack(columns, axis=1).astype(dtype))


def check_outputs(forward: Callable[[np.ndarray], np.ndarray], schema: FeatureSchema, tag: str):
    """ModelRefusedError unless `forward` answers the probe batch with (rows, T) probabilities,
    finite, in [0, 1], and in funnel order (each step at most the one before)."""
    x = probe_batch(schema)
    try:
        probs = np.asarray(forward(x), dtype=np.float64)
    except (RuntimeError, IndexError, ValueError) as exc:
        raise ModelRefusedError(f"model {tag} fails on a probe batch ({exc})") from exc
    if probs.shape != (len(x), len(schema.tasks)):
        raise ModelRefusedError(f"model {tag} answers a probe batch with shape {probs.shape}")
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
        raise ModelRefusedError(f"model {tag} answers a probe batch with non-probabilities")
    rises = int((np.diff(probs, axis=1) > FUNNEL_TOLERANCE).any(axis=1).sum())
    if rises:
        raise ModelRefusedError(
            f"model {tag}: {rises} of {len(x)} probe rows rise along the funnel {schema.tasks}"
        )


Bundle = TypeVar("Bundle")


class PointerWatcher(Generic[Bundle]):
    """Follow the promoted pointer of model `name` under `home` from a daemon thread.

    Every `interval_s` it stats the pointer (registry.pointer_stamp); when the pointer moved to
    another model than `current`, it loads it, `prepare` makes the bundle (and raises
    ArtifactError, ModelRefusedError or SpecError to refuse it), and `swap` installs it. The
    outcome goes to `on_outcome(outcome, seconds)`: "swapped" or "refused", with the seconds from
    noticing the move to the bundle being ready. A refused pointer is not retried until it moves
    again.
    """

    def __init__(
        self,
        home: str | Path,
        name: str,
        current: str,
        *,
        prepare: Callable[[LoadedModel], Bundle],
        swap: Callable[[Bundle], None],
        interval_s: float,
        on_outcome: Callable[[str, str, float], None] = lambda outcome, tag, seconds: None,
    ) -> None:
        self.home, self.name, self.current = Path(home), name, current
        self.prepare, self.swap, self.on_outcome = prepare, swap, on_outcome
        self.interval_s = interval_s
        self._seen: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aitm-model-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:  # e.g. an unpickling error poll does not expect: never die
                # silently, or the service would stop following promotions unnoticed.
                logger.exception("model watcher: checking the pointer failed")
                self.on_outcome("refused", "?", 0.0)

    def poll(self) -> str | None:
        """Check the pointer once; the outcome ("swapped", "refused") or None if it did not
        name another model."""
        stamp = registry.pointer_stamp(self.home, self.name)
        if stamp is None or stamp == self._seen:
            return None
        self._seen = stamp
        start = time.perf_counter()
        record = registry.pointer_record(self.home, self.name)
        if record is None or record.get("tag") == self.current:
            return None
        tag = str(record.get("tag"))
        try:
            pointer = registry.promoted(self.home, self.name)  # checks the files' checksums
            if pointer is None or pointer.tag == self.current:  # moved back meanwhile
                return None
            tag = pointer.tag
            bundle = self.prepare(load(tag, pointer.path))
        except (ArtifactError, SpecError, OSError, ValueError, KeyError) as exc:
            # The old model keeps serving: the refusal is logged and counted, not raised into a
            # thread nobody joins.
            logger.error("model %s refused, %s keeps serving: %s", tag, self.current, exc)
            self.on_outcome("refused", tag, time.perf_counter() - start)
            return "refused"
        self.swap(bundle)
        seconds = time.perf_counter() - start
        logger.info("model %s swapped in for %s (%.2f s)", tag, self.current, seconds)
        self.current = tag
        self.on_outcome("swapped", tag, seconds)
        return "swapped"
