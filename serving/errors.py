"""Errors a request can cause, each with the HTTP status it answers with."""

from __future__ import annotations


class RequestError(ValueError):
    """A request the service rejects; `status` is a 4xx code, the message says why."""

    status = 422

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotFoundError(RequestError):
    status = 404


class UnavailableError(RuntimeError):
    """A dependency cannot answer now (answered with 503: retry later)."""


class StoreUnavailableError(UnavailableError):
    """The online feature store could not be reached."""


class ModelUnavailableError(UnavailableError):
    """The batched model call was shed (BentoML's batching window overflowed) or failed."""
