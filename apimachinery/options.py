"""Query options every write verb takes, parsed once for every API server (issue 11).

``dryRun``: ``All`` runs the whole request (decoding, defaulting, validation, admission,
conflict checks) and answers with the object as it would be stored, without storing it
(``kubectl apply --dry-run=server`` and ``kubectl diff`` rely on it). Kubernetes accepts
the parameter repeated and refuses any value but ``All`` with a 400.
"""

from __future__ import annotations

from typing import Any, Iterable

from apimachinery.errors import APIError


def dry_run(values: Iterable[str], delete_options: Any = None) -> bool:
    """True for ``?dryRun=All`` (or ``dryRun: [All]`` in a DELETE's DeleteOptions, where
    kubectl puts it); a 400 for another value."""
    body = delete_options.get("dryRun") if isinstance(delete_options, dict) else None
    extra = body if isinstance(body, list) else [body] if isinstance(body, str) else []
    given = [v for v in [*values, *extra] if v != ""]
    bad = [v for v in given if v != "All"]
    if bad:
        raise APIError(400, f'Invalid dry run value {bad[0]!r}: supported value is "All"', reason="BadRequest")
    return bool(given)
