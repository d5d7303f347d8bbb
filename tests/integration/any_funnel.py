"""A funnel unlike the simulator's, for the end-to-end tests: other entity, field and task names.

A lender shows offers to customers: view -> start -> submit -> approve -> fund. Customers have
string ids and a numeric field with gaps (`tenure_months`); offers have integer ids; requests
carry a surface, a slot and a weekday. Each step's conditional logit shares a customer x offer
affinity, so every step has signal a model can find on a few thousand rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

TASKS = ["view", "start", "submit", "approve", "fund"]
SPEC_NAME = "lending"


def write_table(path: Path, rows: int = 8_000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_customers, n_offers = 600, 40
    segments = np.array(["mass", "affluent", "student", "smb"])
    regions = np.array(["north", "south", "east", "west", "centre"])
    products = np.array(["personal", "auto", "home", "card"])
    customer_segment = rng.integers(0, len(segments), n_customers)
    customer_region = rng.integers(0, len(regions), n_customers)
    tenure = rng.gamma(2.0, 18.0, n_customers)
    tenure[rng.random(n_customers) < 0.1] = np.nan  # unknown for new customers
    offer_product = rng.integers(0, len(products), n_offers)
    offer_rate = rng.uniform(3.0, 19.0, n_offers).round(1)
    affinity = rng.normal(0, 1.2, (len(segments), len(products)))

    customer = rng.integers(0, n_customers, rows)
    offer = rng.integers(0, n_offers, rows)
    slot = rng.integers(1, 6, rows)
    surface = rng.choice(np.array(["app", "web", "branch"]), rows)
    start = pd.Timestamp("2026-03-01", tz="UTC")
    ts = start + pd.to_timedelta(np.sort(rng.uniform(0, 12 * 86_400, rows)), unit="s")
    base = (
        affinity[customer_segment[customer], offer_product[offer]]
        - 0.25 * (slot - 1)
        + 0.6 * (surface == "app")
        + 0.01 * np.nan_to_num(tenure[customer], nan=20.0)
    )
    bias = np.array([0.0, -0.2, -0.3, -0.1, 0.3])
    labels = np.zeros((rows, len(TASKS)), dtype=np.int8)
    alive = np.ones(rows, dtype=bool)
    for t in range(len(TASKS)):
        p = 1.0 / (1.0 + np.exp(-(bias[t] + base)))
        alive &= rng.random(rows) < p
        labels[:, t] = alive
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{c:04d}" for c in customer],
            "segment": segments[customer_segment[customer]],
            "region": regions[customer_region[customer]],
            "tenure_months": tenure[customer],
            "offer_id": offer.astype(np.int64) + 1000,
            "product": products[offer_product[offer]],
            "apr": offer_rate[offer],
            "surface": surface,
            "slot": slot.astype(np.int64),
            "weekday": ts.day_name().str[:3].to_numpy(),
            "ts": ts,
        }
    )
    for t, task in enumerate(TASKS):
        frame[task] = labels[:, t]
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return frame


def spec_dict(table: Path) -> dict:
    return {
        "name": SPEC_NAME,
        "table": str(table),
        "timestamp": "ts",
        "tasks": TASKS,
        "entities": {
            "customer": {"key": "customer_id", "fields": ["segment", "region", "tenure_months"]},
            "offer": {"key": "offer_id", "fields": ["product", "apr"]},
        },
        "context": ["surface", "slot", "weekday"],
        "numeric": ["tenure_months", "apr"],
        "candidate": "offer",
        "floors": {"default_auc_floor": 0.5},
    }


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
