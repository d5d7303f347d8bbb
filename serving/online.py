"""The service's view of the Feast online store: lookups with errors mapped to HTTP answers."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from serving.errors import NotFoundError, RequestError, StoreUnavailableError

REDIS_FALLBACK_ENV = "REDIS_CONNECTION_STRING"  # the name the k8s manifests use


class OnlineStore:
    """Opened once at start-up. The feature service is resolved once, and again whenever the
    registry changes (`features.online.OnlineFeatureReader`)."""

    def __init__(self, repo: str, variant: str, feature_service: str) -> None:
        from features.online import OnlineFeatureReader
        from features.store import REDIS_ENV, open_store

        fallback = os.environ.get(REDIS_FALLBACK_ENV)
        if variant == "redis" and not os.environ.get(REDIS_ENV) and fallback:
            os.environ[REDIS_ENV] = fallback
        self.reader = OnlineFeatureReader(open_store(repo, variant), feature_service)  # type: ignore[arg-type]

    def lookup(
        self, user_id: int, ad_ids: Sequence[int], context: Mapping[str, Any]
    ) -> dict[str, list[Any]]:
        """Model input columns, one value per ad. Missing ids -> NotFoundError naming them
        (policy: never zero-fill); an unreachable store -> StoreUnavailableError."""
        from features.online import MissingEntityError

        try:
            return self.reader.columns(user_id, ad_ids, context)
        except MissingEntityError as exc:
            raise NotFoundError(str(exc)) from exc
        except ValueError as exc:
            raise RequestError(str(exc)) from exc
        except Exception as exc:  # any store client failure: the store is not answering
            raise StoreUnavailableError(
                f"online feature store unavailable ({type(exc).__name__}: {exc})"
            ) from exc

    def ping(self) -> bool:
        """True if the store answers a lookup (an absent id still counts as an answer)."""
        try:
            self.lookup(0, [0], {"position": 1, "hour": 0, "channel": "probe"})
        except RequestError:
            return True
        except StoreUnavailableError:
            return False
        return True
