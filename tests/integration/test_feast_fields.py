"""The Feast layout's field lists all derive from one mapping of the dataset spec."""

from __future__ import annotations

from aitm.dataset import load_spec
from features.fields import FeastLayout


def test_feature_lists_derive_from_one_mapping():
    layout = FeastLayout(load_spec())  # the default spec
    entities, context_fields, model_fields = layout.entities, layout.request_fields, layout.fields
    stored = [f for e in entities for f in (e.key, *e.features)]
    assert sorted(stored + list(context_fields)) == sorted(model_fields)
    assert set(layout.roles()) == set(model_fields)
    assert len(layout.feature_refs()) == len(model_fields) - len(entities) - len(context_fields)
    assert "ad_features:business_id" in layout.feature_refs()
