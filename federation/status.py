"""Kubernetes ``Status`` objects and the exception that carries one.

Every error our HTTP APIs return (the federation's and each member cluster's) is a
``Status`` body, because that is what kubectl and the official clients parse: they print
``Error from server (NotFound): services "web" not found`` from it. Raising
:class:`APIError` anywhere in a handler is enough; the middleware renders it.
"""

from __future__ import annotations

from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class APIError(Exception):
    """An error with an HTTP code and a Kubernetes reason, rendered as a ``Status``."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        group: str | None = None,
        causes: list[dict[str, str]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.kind = kind
        self.name = name
        self.group = group
        self.causes = causes or []
        self.retry_after = retry_after

    def to_status(self) -> dict[str, Any]:
        return status_object(
            self.code,
            self.message,
            reason=self.reason,
            kind=self.kind,
            name=self.name,
            group=self.group,
            causes=self.causes,
            retry_after=self.retry_after,
        )


def status_object(
    code: int,
    message: str,
    *,
    reason: str | None = None,
    kind: str | None = None,
    name: str | None = None,
    group: str | None = None,
    causes: list[dict[str, str]] | None = None,
    retry_after: int | None = None,
) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name is not None:
        details["name"] = name
    if group:
        details["group"] = group
    if kind is not None:
        details["kind"] = kind
    if causes:
        details["causes"] = causes
    if retry_after is not None:
        details["retryAfterSeconds"] = retry_after
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, "Unknown"),
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def not_found(plural: str, name: str, group: str = "") -> APIError:
    return APIError(404, f'{plural}{"." + group if group else ""} "{name}" not found', kind=plural, name=name, group=group)


def already_exists(plural: str, name: str, group: str = "") -> APIError:
    return APIError(
        409,
        f'{plural}{"." + group if group else ""} "{name}" already exists',
        reason="AlreadyExists",
        kind=plural,
        name=name,
        group=group,
    )


def conflict(plural: str, name: str, group: str = "") -> APIError:
    return APIError(
        409,
        f'Operation cannot be fulfilled on {plural}{"." + group if group else ""} "{name}": '
        "the object has been modified; please apply your changes to the latest version and try again",
        reason="Conflict",
        kind=plural,
        name=name,
        group=group,
    )


def invalid(kind: str, name: str, errors: list[tuple[str, str]], group: str = "") -> APIError:
    """``errors`` is a list of (field path, problem); all are listed, as field.ErrorList does."""
    causes = [{"reason": "FieldValueInvalid", "field": f, "message": f"{f}: {m}"} for f, m in errors]
    joined = ", ".join(f"{f}: {m}" for f, m in errors)
    return APIError(
        422,
        f'{kind} "{name}" is invalid: {joined}',
        reason="Invalid",
        kind=kind,
        name=name,
        group=group,
        causes=causes,
    )


def refused(err: Any, what: str = "") -> APIError:
    """An :class:`apimachinery.errors.RequestRefused` (a body over a limit, a watch asking
    too much) as the ``Status`` both API servers answer with (issue 19)."""
    message = f"{what}: {err.message}" if what else err.message
    return APIError(err.code, message, reason=err.reason, causes=err.causes, retry_after=err.retry_after)
