"""Set-up for the monitoring integration tests: a small high-rate world, a 2-epoch model
promoted with its reference window, a model broken to violate the funnel order, and a Feast
repo for the service to start with (it serves /predict only here)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Conversion rates far above production's so that a few thousand rows hold hundreds of
# positives per step: the rate and AUC tests then have statistical power in a small window.
WORLD = dict(rows=40_000, days=6, val_days=1, test_days=1, n_users=3_000, n_ads=200,
             target_rates=(0.2, 0.1, 0.05, 0.03), chunk_rows=20_000)  # fmt: skip


@dataclass(frozen=True)
class MonitoredModel:
    home: Path  # BENTOML_HOME: the model registered, promoted, its reference stored
    sim: Path
    artifact: Path
    reference: Path
    broken_tag: str  # the same model with the last step's bias raised: registered, not promoted


TRAIN = """
import hashlib, json
from pathlib import Path
import torch
from aitm.checkpoint import MANIFEST, WEIGHTS, save_artifact
from aitm.config import Config, TrainConfig
from aitm.data import read_table
from aitm.simulator import SimulationConfig, simulate
from aitm.training import train
from monitoring.reference import build_reference
from registry.store import promote, register
out = Path({root!r})
simulate(SimulationConfig(**{world!r}), out / "sim")
parts = {{s: read_table(out / "sim" / s) for s in ("train", "val", "test")}}
# Two short epochs of small batches: enough for calibrated, funnel-ordered probabilities.
config = Config(train=TrainConfig(max_epochs=2, batch_size=500, learning_rate=3e-3,
                                  progress=False))
result = train(config, parts["train"], parts["val"])
save_artifact(result, out / "artifact")
reference = build_reference(out / "artifact", parts["test"], out / "reference",
                            {{"window": "test split"}})
home = out / "bentoml"
tag, path = register(out / "artifact", home, labels={{}}, metadata={{}})
info = json.loads((reference / "reference.json").read_text())
info["model_tag"] = tag
(reference / "reference.json").write_text(json.dumps(info))
promote(home, tag, path, {{}}, reference=reference)
# A broken copy: the last step's head bias raised, so its probability often tops the previous.
broken = out / "broken"
broken.mkdir()
state = torch.load(out / "artifact" / WEIGHTS, weights_only=True)
key = next(k for k in state if k.endswith("heads.bias"))
state[key][-1] += 4.0
for f in (out / "artifact").iterdir():
    if f.name not in (WEIGHTS, MANIFEST):
        (broken / f.name).write_bytes(f.read_bytes())
torch.save(state, broken / WEIGHTS)
digest = {{p.name: hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(broken.iterdir())}}
(broken / MANIFEST).write_text(json.dumps(digest))
broken_tag, _ = register(broken, home, labels={{}}, metadata={{}})
print(json.dumps({{"broken_tag": broken_tag}}))
"""


def make_monitored_model(root: Path) -> MonitoredModel:
    """Registration runs in a subprocess: bentoml fixes its store location at import."""
    code = TRAIN.format(root=str(root), world=WORLD)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    broken_tag = json.loads(done.stdout.strip().splitlines()[-1])["broken_tag"]
    return MonitoredModel(home=root / "bentoml", sim=root / "sim", artifact=root / "artifact",
                          reference=root / "reference", broken_tag=broken_tag)  # fmt: skip


def make_feast_repo(sim: Path, destination: Path) -> Path:
    """The world's Feast sources, applied (the service opens the store at start-up)."""
    from aitm.dataset import load_spec
    from features.build import build_sources
    from features.store import apply
    from tests.conftest import copy_repo

    repo = copy_repo(destination)
    build_sources(load_spec(), repo, sim)
    apply(repo, "sqlite")
    return repo


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# A funnel that is not the simulator's: five steps named otherwise, a numeric field (price).
SHOP_FUNNEL = dict(
    name="shop", table="unused.parquet", tasks=["view", "add_to_cart", "checkout", "pay", "repeat"],
    entities={"shopper": {"key": "shopper_id", "fields": ["segment"]},
              "item": {"key": "sku", "fields": ["brand", "price"]}},
    context=["slot"], numeric=["price"], candidate="item",
)  # fmt: skip
