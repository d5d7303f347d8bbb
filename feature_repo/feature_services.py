"""The feature service: the feature set of a model version. Training and serving fetch by name
(`spec.feature_service`, e.g. aitm_v1); request context comes with the request."""

from pathlib import Path

from feast import FeatureService
from feature_views import feature_views

from features.fields import FeastLayout, repo_spec

_layout = FeastLayout(repo_spec(Path(__file__).resolve().parent))

feature_service = FeatureService(
    name=_layout.feature_service,
    features=list(feature_views.values()),
    description=f"Every stored field of dataset {_layout.spec.name!r}; request fields "
    f"({', '.join(_layout.request_fields) or 'none'}) come with the request.",
)
