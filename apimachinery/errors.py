"""Errors as classes, each rendering the Kubernetes ``Status`` kubectl parses (issue 11).

Every error our HTTP APIs return (the federation's and each member cluster's) is a
``Status`` body, because that is what kubectl and the official clients parse: they print
``Error from server (NotFound): services "web" not found`` from it. Raising an
:class:`APIError` anywhere in a handler is enough; the middleware renders it.

``APIError(code, message)`` builds the class that code stands for (``APIError(404, ...)`` is
a :class:`NotFound`, a 409 with reason ``AlreadyExists`` an :class:`AlreadyExists`), and
the client builds the same classes from a server's ``Status``, so callers write
``except NotFound`` instead of comparing integers, on either side of the wire.

:class:`RequestRefused` is what the machinery's own checks raise (a body over a limit, a
watch that asks too much); :func:`refused` turns one into the ``Status`` both servers
answer with (issue 19). The module is a leaf: it imports nothing of ubernetes.
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
    """An error with an HTTP code and a Kubernetes reason, rendered as a ``Status``.

    Built on the base class, it becomes the subclass its reason (else its code) names:
    ``APIError(404, "...")`` is a :class:`NotFound`. A subclass may be built with the
    message alone: ``Gone("too old")`` is a 410."""

    code: int = 500
    reason: str = "InternalError"

    def __new__(cls, code: int | str = 0, *args: Any, reason: str | None = None, **kwargs: Any) -> "APIError":
        if cls is APIError:
            cls = _BY_REASON.get(reason or "", None) or _BY_CODE.get(code, APIError)  # type: ignore[arg-type]
        return super().__new__(cls)

    def __init__(
        self,
        code: int | str,
        message: str | None = None,
        *,
        reason: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        group: str | None = None,
        causes: list[dict[str, str]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        if isinstance(code, str):  # Gone("message"): the class's own code
            code, message = type(self).code, code
        message = message or ""
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or (type(self).reason if type(self) is not APIError else REASONS.get(code, "Unknown"))
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
    if details or code >= 400:
        body["details"] = details  # a real server's failures carry details, empty if nothing more
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
    causes = [{"reason": "FieldValueInvalid", "field": f, "message": m} for f, m in errors]  # clients print both
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




class BadRequest(APIError):
    code, reason = 400, "BadRequest"


class Unauthorized(APIError):
    code, reason = 401, "Unauthorized"


class Forbidden(APIError):
    code, reason = 403, "Forbidden"


class NotFound(APIError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(APIError):
    code, reason = 405, "MethodNotAllowed"


class Conflict(APIError):
    """409: the object changed since it was read (a stale resourceVersion, an apply conflict)."""

    code, reason = 409, "Conflict"


class AlreadyExists(Conflict):
    """409 with reason ``AlreadyExists``: a create of a name that is taken."""

    code, reason = 409, "AlreadyExists"


class Gone(APIError):
    """410 (reason ``Expired``): a resourceVersion older than the history kept."""

    code, reason = 410, "Expired"


class RequestEntityTooLarge(APIError):
    code, reason = 413, "RequestEntityTooLarge"


class UnsupportedMediaType(APIError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(APIError):
    code, reason = 422, "Invalid"


class TooManyRequests(APIError):
    code, reason = 429, "TooManyRequests"


class InternalError(APIError):
    code, reason = 500, "InternalError"


class ServiceUnavailable(APIError):
    code, reason = 503, "ServiceUnavailable"


class Timeout(APIError):
    code, reason = 504, "Timeout"


_CLASSES = (BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict, AlreadyExists, Gone,
            RequestEntityTooLarge, UnsupportedMediaType, Invalid, TooManyRequests, InternalError,
            ServiceUnavailable, Timeout)
_BY_REASON: dict[str, type[APIError]] = {c.reason: c for c in _CLASSES} | {"Gone": Gone}
_BY_CODE: dict[int, type[APIError]] = {}
for _cls in _CLASSES:
    _BY_CODE.setdefault(_cls.code, _cls)  # 409 without a reason: Conflict


def from_status(code: int, body: Any) -> APIError:
    """The error a server's answer stands for (its ``Status`` body when it sent one)."""
    if isinstance(body, dict) and body.get("kind") == "Status":
        details = body.get("details") if isinstance(body.get("details"), dict) else {}
        return APIError(
            int(body.get("code") or code), str(body.get("message") or ""), reason=body.get("reason") or None,
            kind=details.get("kind"), name=details.get("name"), group=details.get("group"),
            causes=details.get("causes") if isinstance(details.get("causes"), list) else None,
            retry_after=details.get("retryAfterSeconds"),
        )
    text = body if isinstance(body, str) else ""
    return APIError(code, text.strip()[:500] or f"HTTP {code}")


def gone(message: str) -> APIError:
    return APIError(410, message, reason="Expired")


class RequestRefused(ValueError):
    """A request the machinery will not serve: ``code``, ``reason`` and ``message`` are its
    ``Status``; ``causes`` its ``details.causes``; ``retry_after`` its ``retryAfterSeconds``."""

    def __init__(self, message: str, *, code: int = 400, reason: str = "BadRequest", problem: str = "",
                 causes: list[dict[str, str]] | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.problem = problem or message  # the message without "the request body is ...", for a file's errors
        self.causes = causes or []
        self.retry_after = retry_after


def refused(err: Any, what: str = "") -> APIError:
    """An :class:`apimachinery.errors.RequestRefused` (a body over a limit, a watch asking
    too much) as the ``Status`` both API servers answer with (issue 19)."""
    message = f"{what}: {err.message}" if what else err.message
    return APIError(err.code, message, reason=err.reason, causes=err.causes, retry_after=err.retry_after)
