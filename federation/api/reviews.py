"""Answers to ``kubectl auth can-i`` and ``kubectl auth whoami`` (issue 18), from our authorizer.

kubectl posts a ``SelfSubjectAccessReview`` (may I do this verb on this resource, or on
this non-resource path?) and a ``SelfSubjectReview`` (who am I?). Nothing is stored: the
API server answers from the request's user and the same rules it enforces
(:func:`federation.api.auth.authorize` at the federation; a member's one role, where any valid
token may do anything). Pure: the callers pass the user and the decision function.
"""

from __future__ import annotations

from typing import Any, Callable

from federation.api.auth import AUTHENTICATED, Decision, User

ANONYMOUS = User("system:anonymous", groups=("system:unauthenticated",))

Decide = Callable[..., Decision]  # (verb, resource, namespace, name, subresource, *, path) -> Decision


def access_review(body: dict[str, Any], decide: Decide) -> dict[str, Any]:
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    attrs = spec.get("resourceAttributes") if isinstance(spec.get("resourceAttributes"), dict) else None
    path_attrs = spec.get("nonResourceAttributes") if isinstance(spec.get("nonResourceAttributes"), dict) else None
    if attrs is not None:
        decision = decide(str(attrs.get("verb") or ""), str(attrs.get("resource") or ""),
                          str(attrs.get("namespace") or ""), str(attrs.get("name") or ""),
                          str(attrs.get("subresource") or ""), path="")
    elif path_attrs is not None:
        decision = decide(str(path_attrs.get("verb") or "get"), "", "", "", "", path=str(path_attrs.get("path") or ""))
    else:
        decision = Decision(False, "the review names neither resourceAttributes nor nonResourceAttributes")
    status = {"allowed": decision.allowed, "reason": decision.reason}
    if not decision.allowed:
        status["denied"] = True
    return {"metadata": {}, "spec": spec, "status": status}


def self_review(user: User | None) -> dict[str, Any]:
    user = user or ANONYMOUS
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    return {"metadata": {}, "status": {"userInfo": info}}


def answer(kind: str, body: dict[str, Any], user: User | None, decide: Decide) -> dict[str, Any]:
    """The review of ``kind`` (SelfSubjectAccessReview or SelfSubjectReview) for ``user``."""
    if kind == "SelfSubjectReview":
        return self_review(user)
    return access_review(body, decide)


def everyone_may(reason: str) -> Decide:
    def decide(verb: str, resource: str, namespace: str, name: str, subresource: str, *, path: str) -> Decision:
        return Decision(True, reason)

    return decide


MEMBER_ADMIN = User("system:admin", groups=("system:masters", AUTHENTICATED))
