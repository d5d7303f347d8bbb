"""Feature services: the feature set of a model version. Training and serving fetch by name."""

from feast import FeatureService
from feature_views import ad_features, user_features

from features.fields import FEATURE_SERVICE

aitm_v1 = FeatureService(
    name=FEATURE_SERVICE,
    features=[user_features, ad_features],
    description="Every user and ad field of the AITM model (aitm.config.SIMULATED_FIELDS); "
    "request context (position, hour, channel) comes with the request.",
)
