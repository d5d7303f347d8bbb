"""Dependency arrows point inward: the core never imports the feature layer's services."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aitm.dataset import load_spec
from features.fields import FeastLayout

ROOT = Path(__file__).resolve().parents[2]


def test_core_imports_no_feast_or_great_expectations():
    code = (
        "import sys, pkgutil, importlib, aitm\n"
        "for m in pkgutil.walk_packages(aitm.__path__, 'aitm.'):\n"
        "    if m.name not in ('aitm.__main__',): importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        "('feast', 'great_expectations', 'pyspark', 'redis'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]


def test_features_cli_starts_without_heavy_imports():
    code = (
        "import sys, features.cli\n"
        "heavy = ('feast', 'great_expectations')\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in heavy)\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]


def test_feature_lists_derive_from_one_mapping():
    layout = FeastLayout(load_spec())  # the default spec
    entities, context_fields, model_fields = layout.entities, layout.request_fields, layout.fields
    stored = [f for e in entities for f in (e.key, *e.features)]
    assert sorted(stored + list(context_fields)) == sorted(model_fields)
    assert set(layout.roles()) == set(model_fields)
    assert len(layout.feature_refs()) == len(model_fields) - len(entities) - len(context_fields)
    assert "ad_features:business_id" in layout.feature_refs()
