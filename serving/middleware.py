"""Pure ASGI middlewares, run before BentoML parses a request: the request rate limit (429), the
JSON-only body type (415), the body size limit (413), and the service's own OpenAPI document
at /docs.json."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

from serving.settings import ServingSettings

MODEL_ROUTES = ("/predict", "/rank")


async def _send_json(send: Any, status: int, content: Any, headers: list | None = None) -> None:
    body = json.dumps(content).encode()
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class JSONOnly:
    """415 for a model route's request whose body is not declared `application/json`: BentoML
    would otherwise try other decoders (a multipart type without a boundary gave a 500)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in MODEL_ROUTES:
            declared = dict(scope.get("headers", [])).get(b"content-type", b"")
            media_type = declared.split(b";")[0].strip().lower()
            if media_type != b"application/json":
                shown = declared.decode(errors="replace")[:100] or "none"
                message = f"content-type must be application/json, got {shown}"
                await _send_json(send, 415, {"error": message})
                return
        await self.app(scope, receive, send)


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes or ServingSettings.from_env().max_body_bytes

    async def _refuse(self, send: Any, size: str) -> None:
        message = f"request body of {size} bytes exceeds the limit of {self.max_bytes}"
        await _send_json(send, 413, {"error": message})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                await self._refuse(send, length.decode(errors="replace"))
                return
            await self.app(scope, receive, send)
            return
        # No length given (chunked): read up to the limit, then replay the body.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._refuse(send, f"more than {size}")
                return
        body, replayed = b"".join(chunks), False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RateLimit:
    """A token bucket per server process over the model routes: `rate` requests a second on
    average, `burst` at once; beyond, 429 with Retry-After. Health, metrics and docs are never
    limited, so probes and scrapes keep working under a flood."""

    def __init__(
        self,
        app: Any,
        rate: float | None = None,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = ServingSettings.from_env()
        self.app = app
        self.rate = settings.rate_limit_rps if rate is None else rate
        self.burst = float(settings.rate_limit_burst if burst is None else burst)
        self.clock = clock
        self.tokens = self.burst
        self.updated = clock()

    def _take(self) -> float:
        """0 if the request may pass (a token taken), else seconds until a token is free."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.rate > 0 and scope["type"] == "http" and scope["path"] in MODEL_ROUTES:
            wait = self._take()
            if wait > 0:
                message = (
                    f"rate limit of {self.rate:g} requests/s (burst {self.burst:g}) exceeded; "
                    f"retry after {wait:.3f} s"
                )
                retry = str(max(1, math.ceil(wait))).encode()
                await _send_json(send, 429, {"error": message}, [(b"retry-after", retry)])
                return
        await self.app(scope, receive, send)


class OpenAPIDocument:
    """Serve GET /docs.json from `build()` (built once, on first use) instead of BentoML's."""

    def __init__(self, app: Any, build: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.build = build
        self.document: dict[str, Any] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/docs.json" and scope["method"] == "GET":
            if self.document is None:
                self.document = self.build()
            await _send_json(send, 200, self.document)
            return
        await self.app(scope, receive, send)
