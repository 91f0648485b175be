"""Typed exceptions of the orchestratr client.

Every error answer of the daemon (API.md §2: ``{"error", "code", "details"}``)
becomes an :class:`ApiError` subclass chosen by its ``code``; the original
``code``, HTTP ``status`` and ``details`` are kept on the exception.
"""

from typing import Any, Dict, Optional, Type

__all__ = [
    "OrchestratrError",
    "NotRunning",
    "ApiError",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "Gone",
    "Unprocessable",
    "RateLimited",
    "QueueFull",
    "Unavailable",
    "error_for",
]


class OrchestratrError(Exception):
    """Base class of every error raised by this package."""


class NotRunning(OrchestratrError):
    """No daemon answers (no port file, or connection refused)."""


class ApiError(OrchestratrError):
    """The daemon answered with an error status.

    Attributes:
        status: the HTTP status (e.g. 404).
        code: the API's stable error code (e.g. ``"not_found"``).
        message: the human message.
        details: structured extras, or ``None``.
    """

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(f"{message} ({status} {code})")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class BadRequest(ApiError):
    """``400 bad_request``: a field is missing or malformed."""


class Unauthorized(ApiError):
    """``401 unauthorized``: missing or wrong token."""


class Forbidden(ApiError):
    """``403 forbidden`` (and ``forbidden_host``/``forbidden_origin``)."""


class NotFound(ApiError):
    """``404 not_found``."""


class Conflict(ApiError):
    """``409 conflict`` (e.g. an approval already decided)."""


class Gone(ApiError):
    """``410 gone`` (e.g. a used one-time action URL)."""


class Unprocessable(ApiError):
    """``422 unprocessable`` / ``launch_failed`` / ``invalid_config``."""


class RateLimited(ApiError):
    """``429 rate_limited``; ``retry_after`` holds the seconds to wait."""

    retry_after: Optional[float] = None


class QueueFull(RateLimited):
    """``429 queue_full``: the pool's queue is full."""


class Unavailable(ApiError):
    """``503 unavailable``: shutting down or over a capacity limit."""


_BY_CODE: Dict[str, Type[ApiError]] = {
    "bad_request": BadRequest,
    "unsupported_media_type": BadRequest,
    "payload_too_large": BadRequest,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "forbidden_host": Forbidden,
    "forbidden_origin": Forbidden,
    "not_found": NotFound,
    "conflict": Conflict,
    "not_running": Conflict,
    "gone": Gone,
    "unprocessable": Unprocessable,
    "launch_failed": Unprocessable,
    "invalid_config": Unprocessable,
    "rate_limited": RateLimited,
    "queue_full": QueueFull,
    "unavailable": Unavailable,
}


def error_for(status: int, body: Any) -> ApiError:
    """The exception for an error answer ``body`` with HTTP ``status``."""
    if isinstance(body, dict):
        code = str(body.get("code") or "")
        message = str(body.get("error") or f"request failed with status {status}")
        details = body.get("details")
    else:
        code, message, details = "", f"request failed with status {status}", None
    cls = _BY_CODE.get(code, ApiError)
    return cls(status, code or "internal", message, details)
