"""A pure ASGI middleware refusing bodies over the configured size with 413, before parsing."""

from __future__ import annotations

import json
from typing import Any

from serving.settings import ServingSettings


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes or ServingSettings.from_env().max_body_bytes

    async def _refuse(self, send: Any, size: str) -> None:
        body = json.dumps(
            {"error": f"request body of {size} bytes exceeds the limit of {self.max_bytes}"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

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
