"""A seeded world of a financial advertising funnel with known ground truth.

impression -> click -> application -> approval -> activation. Every impression carries its
end-to-end labels (y_1 >= ... >= y_T) and the TRUE end-to-end probability of every step, so the
oracle AUC is known. Step probabilities mix field effects correlated across steps, pairwise
crosses no linear model captures, a low-rank user x ad term, and per-user and per-ad random
effects that a model can only learn for users and ads it has seen often. Most users are seen a
handful of times, so the oracle stays out of reach.

Two features change over time (a user's credit band, an ad's creative), so point-in-time
correct feature retrieval matters. Drift knobs: a shifted user population and a changed
conversion rate of one step, each from a given day on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aitm.data import TRUE_PREFIX
from aitm.evaluation import exact_auc

# The simulator's own names; datasets/simulated.yaml declares the same for every other layer.
SIMULATED_FIELDS: tuple[str, ...] = (
    "user_id", "age_band", "gender", "income_band", "credit_band", "occupation", "city", "device",
    "ad_id", "business_id", "card_type", "creative_type",
    "position", "hour", "channel",
)  # fmt: skip
SIMULATED_TASKS: tuple[str, ...] = ("click", "application", "approval", "activation")
SPLITS = ("train", "val", "test")

AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
GENDERS = ("female", "male", "unknown")
INCOME_BANDS = ("<20k", "20-40k", "40-60k", "60-90k", "90-150k", "150k+")
CREDIT_BANDS = ("300-499", "500-579", "580-619", "620-659", "660-699", "700-739", "740-799", "800+")
OCCUPATIONS = (
    "salaried", "student", "self-employed", "retired", "public-sector", "healthcare",
    "engineering", "sales", "education", "hospitality", "unemployed", "other",
)  # fmt: skip
DEVICES = ("android", "ios", "web", "tablet")
CARD_TYPES = ("cashback", "travel", "student", "secured", "premium", "business")
CREATIVE_TYPES = (
    "static-banner", "carousel", "video-short", "video-long", "native-article",
    "interactive", "testimonial", "comparison-table",
)  # fmt: skip
CHANNELS = ("feed", "search", "partner-site", "email", "video", "marketplace")
N_POSITIONS = 10


class DriftConfig(BaseModel):
    """Changes of the world from `start_day` (0-based, counted from the first day) on."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start_day: int = Field(ge=0)
    user_shift: float = Field(default=0.0, ge=0.0, le=1.0)  # share of traffic from a new cohort
    step: str | None = None  # task whose conversion (given the previous step) changes
    rate_factor: float = Field(default=1.0, gt=0.0)  # multiplies that step's conditional rate

    @model_validator(mode="after")
    def _check(self) -> DriftConfig:
        if self.step is not None and self.step not in SIMULATED_TASKS:
            raise ValueError(f"drift.step must be one of {SIMULATED_TASKS}, got {self.step!r}")
        return self


class SimulationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rows: int = Field(default=1_000_000, ge=1)
    seed: int = 0  # the world (users, ads, effects); traffic draws use seed + 1
    days: int = Field(default=30, ge=3)
    val_days: int = Field(default=3, ge=1)
    test_days: int = Field(default=3, ge=1)
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    n_users: int = Field(default=500_000, ge=10)
    n_ads: int = Field(default=2_000, ge=10)
    n_businesses: int = Field(default=40, ge=2)
    target_rates: tuple[float, ...] = (0.05, 0.01, 0.004, 0.002)  # end-to-end, per task
    chunk_rows: int = Field(default=500_000, ge=1_000)
    drift: DriftConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> SimulationConfig:
        if len(self.target_rates) != len(SIMULATED_TASKS):
            raise ValueError(f"target_rates needs {len(SIMULATED_TASKS)} rates")
        rates = self.target_rates
        if not all(0 < r < 1 for r in rates) or any(b > a for a, b in zip(rates, rates[1:])):
            raise ValueError(f"target_rates must be in (0, 1) and non-increasing, got {rates}")
        if self.val_days + self.test_days >= self.days:
            raise ValueError("days must exceed val_days + test_days")
        return self


# Strength of each field's main effect per step (click, application, approval, activation).
_FIELD_SCALE: dict[str, tuple[float, float, float, float]] = {
    "age_band": (0.25, 0.35, 0.45, 0.45),
    "gender": (0.08, 0.08, 0.08, 0.08),
    "income_band": (0.15, 0.35, 0.6, 0.35),
    "credit_band": (0.10, 0.3, 0.9, 0.3),
    "occupation": (0.15, 0.25, 0.4, 0.35),
    "city": (0.2, 0.2, 0.15, 0.25),
    "device": (0.25, 0.3, 0.1, 0.35),
    "card_type": (0.3, 0.35, 0.35, 0.45),
    "business_id": (0.25, 0.35, 0.45, 0.45),
    "creative_type": (0.35, 0.15, 0.05, 0.1),
    "position": (0.0, 0.1, 0.0, 0.0),  # position's click effect is the monotone decay below
    "hour": (0.2, 0.15, 0.05, 0.05),
    "channel": (0.35, 0.25, 0.1, 0.25),
}
# Pairwise crosses: every combination of values has its own effect per step.
_CROSSES: tuple[tuple[str, str, float], ...] = (
    ("age_band", "card_type", 0.5),
    ("credit_band", "business_id", 0.45),
    ("hour", "channel", 0.35),
    ("device", "creative_type", 0.4),
    ("income_band", "card_type", 0.45),
    ("occupation", "business_id", 0.35),
)
_CROSS_STEP_SCALE = (1.0, 0.9, 0.8, 0.9)
_STEP_CORRELATION = 0.7  # of every effect across steps
_LATENT_RANK = 4
_LATENT_SCALE = (0.5, 0.6, 0.6, 0.7)  # the user x ad dot product per step
_USER_EFFECT = (0.5, 0.5, 0.5, 0.5)  # per-user random intercept, std per step
_AD_EFFECT = (0.35, 0.35, 0.3, 0.35)
_HOURLY_TRAFFIC = np.array(
    [2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 6, 7, 6, 6, 6, 6, 7, 8, 9, 9, 8, 6, 4], dtype=float
)


def _zipf_weights(n: int, exponent: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** exponent
    return w / w.sum()


def _lognormal_weights(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    w = rng.lognormal(0.0, sigma, n)
    return w / w.sum()


def _draw(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)


def _correlated(rng: np.random.Generator, shape: tuple[int, ...], scales) -> np.ndarray:
    """(T, *shape) effects: a shared part plus a per-step part, step t scaled by scales[t]."""
    shared = rng.standard_normal(shape)
    rho = _STEP_CORRELATION
    own = rng.standard_normal((len(scales), *shape))
    return np.stack(
        [s * (rho * shared + math.sqrt(1 - rho**2) * own[t]) for t, s in enumerate(scales)]
    )


def _pure_interaction(table: np.ndarray) -> np.ndarray:
    """(T, A, B) cross effects with row and column means removed, rescaled to keep variance:
    nothing of it is reachable by a model that is additive in the two fields."""
    a, b = table.shape[1:]
    centred = (
        table
        - table.mean(axis=2, keepdims=True)
        - table.mean(axis=1, keepdims=True)
        + table.mean(axis=(1, 2), keepdims=True)
    )
    return centred * math.sqrt(a * b / ((a - 1) * (b - 1)))


@dataclass
class _Population:
    """Attribute codes per entity: fixed columns, plus one that changes at `change_time`."""

    codes: dict[str, np.ndarray]
    changing: str
    new_code: np.ndarray
    change_time: np.ndarray  # seconds from the start, inf where it never changes
    weights_cdf: np.ndarray
    ids: np.ndarray  # raw int64 ids


class FunnelWorld:
    """Users, ads, effects and calibrated intercepts: everything `seed` fixes."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        rng = np.random.default_rng(config.seed)
        self.horizon = config.days * 86_400.0
        self.tasks = SIMULATED_TASKS
        n_steps = len(self.tasks)

        self.vocab: dict[str, tuple] = {
            "age_band": AGE_BANDS, "gender": GENDERS, "income_band": INCOME_BANDS,
            "credit_band": CREDIT_BANDS, "occupation": OCCUPATIONS,
            "city": tuple(f"city-{i:03d}" for i in range(300)), "device": DEVICES,
            "card_type": CARD_TYPES, "creative_type": CREATIVE_TYPES, "channel": CHANNELS,
        }  # fmt: skip
        self.users = self._make_users(rng, config.n_users, id_base=10_000_000, shifted=False)
        self.new_users = self._make_users(
            rng, max(config.n_users // 5, 10), id_base=20_000_000, shifted=True
        )
        self.ads = self._make_ads(rng)
        self.position_cdf = np.cumsum(_zipf_weights(N_POSITIONS, 0.8))
        self.channel_cdf = np.cumsum([0.4, 0.2, 0.15, 0.05, 0.12, 0.08])
        hourly = _HOURLY_TRAFFIC / _HOURLY_TRAFFIC.sum()
        self.day_fraction_cdf = np.concatenate([[0.0], np.cumsum(hourly)])

        cards = {
            "age_band": len(AGE_BANDS), "gender": len(GENDERS), "income_band": len(INCOME_BANDS),
            "credit_band": len(CREDIT_BANDS), "occupation": len(OCCUPATIONS), "city": 300,
            "device": len(DEVICES), "card_type": len(CARD_TYPES),
            "business_id": config.n_businesses, "creative_type": len(CREATIVE_TYPES),
            "position": N_POSITIONS, "hour": 24, "channel": len(CHANNELS),
        }  # fmt: skip
        self.cardinality = cards
        self.effects = {f: _correlated(rng, (cards[f],), _FIELD_SCALE[f]) for f in _FIELD_SCALE}
        # Credit quality matters monotonically for approval, on top of the random part.
        self.effects["credit_band"][2] += np.linspace(-1.6, 1.2, len(CREDIT_BANDS))
        self.effects["income_band"][2] += np.linspace(-0.6, 0.6, len(INCOME_BANDS))
        self.position_decay = -0.22 * np.arange(N_POSITIONS)
        self.crosses = {
            (a, b): _pure_interaction(
                _correlated(rng, (cards[a], cards[b]), [s * c for c in _CROSS_STEP_SCALE])
            )
            for a, b, s in _CROSSES
        }
        self.user_effect = _correlated(rng, (config.n_users,), _USER_EFFECT)
        self.new_user_effect = _correlated(rng, (len(self.new_users.ids),), _USER_EFFECT)
        self.ad_effect = _correlated(rng, (config.n_ads,), _AD_EFFECT)
        # Low rank user x ad affinity: partly explained by attributes, partly idiosyncratic.
        k = _LATENT_RANK
        loaded = ("age_band", "income_band", "occupation", "card_type", "business_id")
        self.attr_loading = {f: rng.standard_normal((cards[f], k)) * 0.5 for f in loaded}
        self.user_latent = rng.standard_normal((config.n_users, k)) * 0.8
        self.new_user_latent = rng.standard_normal((len(self.new_users.ids), k)) * 0.8
        self.ad_latent = rng.standard_normal((config.n_ads, k)) * 0.8
        self.latent_scale = np.asarray(_LATENT_SCALE[:n_steps])
        self.intercepts = np.zeros(n_steps)
        self._calibrate(np.random.default_rng(config.seed + 10_007))

    # --- entities -------------------------------------------------------------------------

    def _make_users(self, rng, n: int, id_base: int, shifted: bool) -> _Population:
        age_p = (
            [0.08, 0.12, 0.18, 0.22, 0.22, 0.18]
            if not shifted
            else [0.45, 0.35, 0.1, 0.05, 0.03, 0.02]
        )
        device_p = [0.5, 0.3, 0.15, 0.05] if not shifted else [0.25, 0.65, 0.05, 0.05]
        age = _draw(rng, np.cumsum(age_p), n)
        income = np.clip(
            age // 2 + rng.integers(0, 4, n) - (1 if shifted else 0), 0, len(INCOME_BANDS) - 1
        )
        credit = np.clip(income + rng.integers(-1, 4, n), 0, len(CREDIT_BANDS) - 1)
        city_weights = _zipf_weights(300, 1.0)
        if shifted:
            city_weights = np.roll(city_weights, 37)
        codes = {
            "age_band": age,
            "gender": _draw(rng, np.cumsum([0.48, 0.48, 0.04]), n),
            "income_band": income,
            "credit_band": credit,
            "occupation": _draw(rng, np.cumsum(_zipf_weights(len(OCCUPATIONS), 0.9)), n),
            "city": _draw(rng, np.cumsum(city_weights), n),
            "device": _draw(rng, np.cumsum(device_p), n),
        }
        changes = rng.random(n) < 0.3
        change_time = np.where(changes, rng.uniform(0, self.horizon, n), np.inf)
        new_credit = np.clip(credit + rng.choice([-2, -1, 1, 2], n), 0, len(CREDIT_BANDS) - 1)
        weights = _lognormal_weights(rng, n, 1.0)
        ids = id_base + rng.permutation(n).astype(np.int64)
        return _Population(codes, "credit_band", new_credit, change_time, np.cumsum(weights), ids)

    def _make_ads(self, rng) -> _Population:
        cfg = self.config
        n = cfg.n_ads
        business_cdf = np.cumsum(_zipf_weights(cfg.n_businesses, 0.9))
        codes = {
            "business_id": _draw(rng, business_cdf, n),
            "card_type": rng.integers(0, len(CARD_TYPES), n),
            "creative_type": rng.integers(0, len(CREATIVE_TYPES), n),
        }
        changes = rng.random(n) < 0.4
        change_time = np.where(changes, rng.uniform(0, self.horizon, n), np.inf)
        new_creative = (codes["creative_type"] + rng.integers(1, len(CREATIVE_TYPES), n)) % len(
            CREATIVE_TYPES
        )
        weights = _lognormal_weights(rng, n, 1.5)
        ids = 500_000 + rng.permutation(n).astype(np.int64)
        return _Population(
            codes, "creative_type", new_creative, change_time, np.cumsum(weights), ids
        )

    @property
    def business_ids(self) -> np.ndarray:
        return 9_000 + np.arange(self.config.n_businesses, dtype=np.int64)

    # --- traffic --------------------------------------------------------------------------

    def _impressions(self, rng, seconds: np.ndarray) -> dict[str, np.ndarray]:
        """Codes of every field for impressions at the given times (seconds from the start)."""
        n = len(seconds)
        drift = self.config.drift
        new_cohort = np.zeros(n, dtype=bool)
        if drift is not None and drift.user_shift > 0:
            drifted = seconds >= drift.start_day * 86_400.0
            new_cohort = drifted & (rng.random(n) < drift.user_shift)
        user = _draw(rng, self.users.weights_cdf, n)
        new_user = _draw(rng, self.new_users.weights_cdf, n)
        ad = _draw(rng, self.ads.weights_cdf, n)
        out: dict[str, np.ndarray] = {"_user": user, "_new_user": new_user, "_new": new_cohort}
        for name in self.users.codes:
            out[name] = np.where(
                new_cohort,
                self._valid_code(self.new_users, name, new_user, seconds),
                self._valid_code(self.users, name, user, seconds),
            )
        for name in self.ads.codes:
            out[name] = self._valid_code(self.ads, name, ad, seconds)
        out["_ad"] = ad
        out["position"] = _draw(rng, self.position_cdf, n)
        out["hour"] = ((seconds % 86_400.0) // 3_600.0).astype(np.int64)
        out["channel"] = _draw(rng, self.channel_cdf, n)
        return out

    @staticmethod
    def _valid_code(pop: _Population, name: str, idx: np.ndarray, seconds: np.ndarray):
        codes = pop.codes[name][idx]
        if name == pop.changing:
            codes = np.where(seconds >= pop.change_time[idx], pop.new_code[idx], codes)
        return codes

    def _logits(self, x: dict[str, np.ndarray]) -> np.ndarray:
        """(T, N) conditional step logits before intercepts."""
        new = x["_new"]
        logits = self.position_decay[x["position"]][None, :] * np.array([1, 0.3, 0, 0])[:, None]
        for name, table in self.effects.items():
            logits = logits + table[:, x[name]]
        for (a, b), table in self.crosses.items():
            logits = logits + table[:, x[a], x[b]]
        user_effect = np.where(
            new, self.new_user_effect[:, x["_new_user"]], self.user_effect[:, x["_user"]]
        )
        logits = logits + user_effect + self.ad_effect[:, x["_ad"]]
        user_vec = np.where(
            new[:, None], self.new_user_latent[x["_new_user"]], self.user_latent[x["_user"]]
        )
        ad_vec = self.ad_latent[x["_ad"]].copy()
        for f in ("age_band", "income_band", "occupation"):
            user_vec += self.attr_loading[f][x[f]]
        for f in ("card_type", "business_id"):
            ad_vec += self.attr_loading[f][x[f]]
        affinity = (user_vec * ad_vec).sum(axis=1) / math.sqrt(_LATENT_RANK)
        return logits + self.latent_scale[:, None] * affinity[None, :]

    def _calibrate(self, rng) -> None:
        """Intercepts so that the mean end-to-end rate of every step hits its target."""
        seconds = np.sort(rng.uniform(0, self.horizon, 200_000))
        logits = self._logits(self._impressions(rng, seconds))
        reach = np.ones(logits.shape[1])
        for t, target in enumerate(self.config.target_rates):
            lo, hi = -20.0, 20.0
            for _ in range(60):
                mid = (lo + hi) / 2
                rate = (reach / (1 + np.exp(-(logits[t] + mid)))).mean()
                lo, hi = (mid, hi) if rate < target else (lo, mid)
            self.intercepts[t] = (lo + hi) / 2
            reach = reach / (1 + np.exp(-(logits[t] + self.intercepts[t])))

    def sample(self, rng, seconds: np.ndarray) -> pd.DataFrame:
        """Impressions at the given times, with labels and true end-to-end probabilities."""
        x = self._impressions(rng, seconds)
        step_p = 1.0 / (1.0 + np.exp(-(self._logits(x) + self.intercepts[:, None])))
        drift = self.config.drift
        if drift is not None and drift.step is not None and drift.rate_factor != 1.0:
            t = self.tasks.index(drift.step)
            after = seconds >= drift.start_day * 86_400.0
            step_p[t] = np.where(after, np.minimum(step_p[t] * drift.rate_factor, 1.0), step_p[t])
        converted = rng.random(step_p.shape) < step_p
        labels = np.cumprod(converted, axis=0).astype(np.int8)
        true_p = np.cumprod(step_p, axis=0)

        start = pd.Timestamp(self.config.start)
        frame = {
            "impression_id": None,
            "event_timestamp": start
            + pd.to_timedelta(np.round(seconds * 1e6).astype(np.int64), "us"),
            "user_id": np.where(
                x["_new"], self.new_users.ids[x["_new_user"]], self.users.ids[x["_user"]]
            ),
            "ad_id": self.ads.ids[x["_ad"]],
            "business_id": self.business_ids[x["business_id"]],
            "position": x["position"].astype(np.int64) + 1,
            "hour": x["hour"],
        }
        for name, values in self.vocab.items():
            frame[name] = pd.Categorical.from_codes(x[name], categories=list(values))
        frame.pop("impression_id")
        for t, task in enumerate(self.tasks):
            frame[task] = labels[t]
        for t, task in enumerate(self.tasks):
            frame[TRUE_PREFIX + task] = true_p[t].astype(np.float32)
        columns = [
            "event_timestamp",
            *SIMULATED_FIELDS,
            *self.tasks,
            *(TRUE_PREFIX + t for t in self.tasks),
        ]
        return pd.DataFrame(frame)[columns]

    def entity_tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """User and ad attribute histories: one row per entity, plus one per change."""
        start = pd.Timestamp(self.config.start)
        created = start - pd.Timedelta(days=1)
        user_frames = []
        for pop in (self.users, self.new_users):
            user_frames.append(self._history(pop, pop.ids, created, start, tuple(pop.codes)))
        users = pd.concat(user_frames, ignore_index=True)
        ads = self._history(
            self.ads, self.ads.ids, created, start, ("business_id", "card_type", "creative_type")
        )
        users = users.rename(columns={"entity_id": "user_id"})
        ads = ads.rename(columns={"entity_id": "ad_id"})
        ads["business_id"] = self.business_ids[ads["business_id"].cat.codes.to_numpy()]
        return users, ads

    def _history(self, pop: _Population, ids, created, start, columns) -> pd.DataFrame:
        def frame(codes: dict[str, np.ndarray], rows: np.ndarray, when) -> pd.DataFrame:
            out = {"entity_id": ids[rows], "event_timestamp": when}
            for c in columns:
                categories = self.vocab.get(c, tuple(range(self.config.n_businesses)))
                out[c] = pd.Categorical.from_codes(codes[c][rows], categories=list(categories))
            return pd.DataFrame(out)

        everyone = np.arange(len(ids))
        base = frame(pop.codes, everyone, pd.Series([created] * len(ids)))
        changed = np.flatnonzero(np.isfinite(pop.change_time))
        new_codes = dict(pop.codes)
        new_codes[pop.changing] = pop.new_code
        when = start + pd.to_timedelta(
            np.round(pop.change_time[changed] * 1e6).astype(np.int64), "us"
        )
        after = frame(new_codes, changed, pd.Series(when))
        return pd.concat([base, after], ignore_index=True).sort_values(
            ["event_timestamp", "entity_id"], ignore_index=True
        )


def _warp_to_traffic(world: FunnelWorld, seconds: np.ndarray) -> np.ndarray:
    """Move uniform times within each day to follow the hourly traffic curve (keeps order)."""
    day, frac = np.divmod(seconds, 86_400.0)
    cdf = world.day_fraction_cdf
    warped = np.interp(frac / 86_400.0, cdf, np.linspace(0.0, 1.0, len(cdf)))
    return day * 86_400.0 + warped * 86_400.0


def simulate(config: SimulationConfig, out_dir: str | Path) -> dict:
    """Write train/val/test Parquet parts split by time, entity histories and oracle figures."""
    out = Path(out_dir)
    world = FunnelWorld(config)
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
    test_start = (config.days - config.test_days) * 86_400.0
    val_start = test_start - config.val_days * 86_400.0
    rng = np.random.default_rng(config.seed + 1)
    n_chunks = math.ceil(config.rows / config.chunk_rows)
    edges = np.linspace(0.0, world.horizon, n_chunks + 1)
    held_out: dict[str, list[pd.DataFrame]] = {"val": [], "test": []}
    counts = dict.fromkeys(SPLITS, 0)
    positives = {split: np.zeros(len(world.tasks), dtype=np.int64) for split in SPLITS}
    next_id = 0
    for c in range(n_chunks):
        n = min(config.chunk_rows, config.rows - c * config.chunk_rows)
        seconds = _warp_to_traffic(world, np.sort(rng.uniform(edges[c], edges[c + 1], n)))
        frame = world.sample(rng, seconds)
        frame.insert(0, "impression_id", np.arange(next_id, next_id + n, dtype=np.int64))
        next_id += n
        split_of = np.where(seconds >= test_start, 2, np.where(seconds >= val_start, 1, 0))
        for s, split in enumerate(SPLITS):
            part = frame[split_of == s]
            if part.empty:
                continue
            pq.write_table(
                pa.Table.from_pandas(part, preserve_index=False),
                out / split / f"part-{c:05d}.parquet",
            )
            counts[split] += len(part)
            positives[split] += part[list(world.tasks)].to_numpy().sum(axis=0)
            if split in held_out:
                held_out[split].append(
                    part[[*world.tasks, *(TRUE_PREFIX + t for t in world.tasks)]]
                )
    users, ads = world.entity_tables()
    users.to_parquet(out / "users.parquet", index=False)
    ads.to_parquet(out / "ads.parquet", index=False)

    summary: dict = {
        "config": json.loads(config.model_dump_json()),
        "tasks": list(world.tasks),
        "fields": list(SIMULATED_FIELDS),
        "rows": counts,
        "positive_rate": {
            split: {
                t: float(positives[split][i] / max(counts[split], 1))
                for i, t in enumerate(world.tasks)
            }
            for split in SPLITS
        },
        "oracle_auc": {},
    }
    for split, parts in held_out.items():
        if not parts:
            continue
        held = pd.concat(parts, ignore_index=True)
        summary["oracle_auc"][split] = {
            t: exact_auc(held[t].to_numpy(), held[TRUE_PREFIX + t].to_numpy()) for t in world.tasks
        }
    (out / "oracle.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def first_day_of(config: SimulationConfig, day: int) -> datetime:
    return config.start + timedelta(days=day)
