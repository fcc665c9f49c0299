"""Why the machinery refused a request, as classes that carry their ``Status``.

The API servers render a :class:`RequestRefused` (and its subclasses) as a Kubernetes
``Status`` with the code and reason it holds, so a body over a limit or a watch that asks
too much gets the same answer from the federation and from every member. The package is a
leaf: it does not know the servers' own error type, the servers convert (one function,
``federation.status.refused``).
"""

from __future__ import annotations


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
