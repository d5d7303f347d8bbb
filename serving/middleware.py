"""Pure ASGI middlewares, run before BentoML parses a request: the JSON-only body type (415), the
body size limit (413), and the service's own OpenAPI document at /docs.json. The limit on
requests in flight (429) is BentoML's own (`traffic.max_concurrency`, serving.settings)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

MODEL_ROUTES = ("/predict", "/rank")


async def _send_json(send: Any, status: int, content: Any) -> None:
    body = json.dumps(content).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
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
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

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
