"""The service's view of the Feast online store: lookups with errors mapped to HTTP answers."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from aitm.dataset import DatasetSpec
from serving.errors import NotFoundError, RequestError, StoreUnavailableError

# A request must fail fast when Redis is down, not wait out redis-py's default retries with
# backoff for its 503: no retry, short timeouts; options already given are kept.
REDIS_FAIL_FAST = {"retry": "null", "socket_connect_timeout": "0.5", "socket_timeout": "1"}


def fail_fast(connection: str) -> str:
    """A Feast Redis connection string (`host:port,key=value,...`) with REDIS_FAIL_FAST's
    options added where it does not set them."""
    given = {part.split("=", 1)[0].strip() for part in connection.split(",") if "=" in part}
    extra = [f"{k}={v}" for k, v in REDIS_FAIL_FAST.items() if k not in given]
    return ",".join([connection, *extra])


class OnlineStore:
    """Opened once at start-up. The feature service is resolved once, and again whenever the
    registry changes (`features.online.OnlineFeatureReader`); the names come from `spec`."""

    def __init__(
        self,
        repo: str,
        variant: str,
        feature_service: str,
        spec: DatasetSpec,
        dtypes: Mapping[str, str],
        redis_connection: str = "",
    ) -> None:
        """`dtypes`: each field's type in the served model ("int", "str" or "float"), for the
        readiness probe's values. `redis_connection`: the redis variant's store, handed to Feast
        through the environment variable its yaml file expands."""
        from features.online import OnlineFeatureReader
        from features.store import REDIS_ENV, open_store

        if variant == "redis" and redis_connection:
            os.environ[REDIS_ENV] = fail_fast(redis_connection)
        self.spec = spec
        self.dtypes = dict(dtypes)
        self.reader = OnlineFeatureReader(open_store(repo, variant), feature_service, spec)  # type: ignore[arg-type]

    def lookup(
        self,
        request_keys: Mapping[str, Any],
        candidate_ids: Sequence[Any],
        context: Mapping[str, Any],
    ) -> dict[str, list[Any]]:
        """Model input columns, one value per candidate. `request_keys`: each request
        entity's key -> its value; `context`: the spec's context fields (scalars) and
        candidate_context fields (one value per candidate). Missing ids -> NotFoundError naming
        them (policy: never zero-fill); an unreachable store -> StoreUnavailableError."""
        from features.online import MissingEntityError

        try:
            return self.reader.columns(dict(request_keys), candidate_ids, context)
        except MissingEntityError as exc:
            raise NotFoundError(str(exc)) from exc
        except ValueError as exc:
            raise RequestError(str(exc)) from exc
        except Exception as exc:  # any store client failure: the store is not answering
            raise StoreUnavailableError(
                f"online feature store unavailable ({type(exc).__name__}: {exc})"
            ) from exc

    def _probe(self, name: str) -> Any:
        """A well-typed value of a field (the low end of its range where it has one)."""
        dtype = self.dtypes.get(name, "str")
        low = self.spec.ranges.get(name, (0, 0))[0]
        if dtype == "int":
            return int(low)
        if dtype == "float":
            return float(low)
        return "probe"

    def ping(self) -> bool:
        """True if the store answers a lookup (an absent id still counts as an answer)."""
        keys = {e.key: self._probe(e.key) for e in self.spec.request_entities.values()}
        context: dict[str, Any] = {n: self._probe(n) for n in self.spec.context}
        context.update({n: [self._probe(n)] for n in self.spec.candidate_context})
        try:
            self.lookup(keys, [self._probe(self.spec.candidate_entity.key)], context)
        except RequestError:
            return True
        except StoreUnavailableError:
            return False
        return True
