"""Fault switches of one member cluster (issue 5), flipped over HTTP at ``/chaos``.

Failover experiments need faults that the process table cannot give: a member cut off from
the control plane while its load balancers keep serving (split brain), a dead data plane
behind a healthy API, a slow API, lost probes, unready pods. Each is one field of
:class:`Chaos`; the API middleware, the data plane, the agent and the pod simulation read
it on every request or tick, so a change takes effect at once and healing is setting the
field back. Crashing and flapping a member need the process table and belong to the launcher.

``POST /chaos`` takes a JSON merge patch of the fields below; ``GET /chaos`` shows them;
``DELETE /chaos`` heals everything. The ``/chaos`` endpoint itself is never faulted.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from apimachinery.errors import invalid


@dataclass
class Chaos:
    # the API stops answering (connections are dropped) and lease renewals stop;
    # the LB listeners keep serving
    partitioned: bool = False
    # LB listeners accept connections and never answer, like a black-holed route
    dataPlaneBlackholed: bool = False
    # seconds added before every API response
    apiLatency: float = 0.0
    # fraction (0..1) of /healthz probes whose connection is dropped
    probeDropFraction: float = 0.0
    # "namespace/service" -> how many of its pods are forced unready ("all" or an integer)
    unreadyPods: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def apply(self, patch: Any) -> None:
        """Merge ``patch`` into the switches, validating everything before changing anything."""
        if not isinstance(patch, dict):
            raise invalid("Chaos", "chaos", [("", "Invalid value: must be a JSON object")])
        errors: list[tuple[str, str]] = []
        new = self.to_dict()
        for key, value in patch.items():
            if key in ("partitioned", "dataPlaneBlackholed"):
                if value is not None and not isinstance(value, bool):
                    errors.append((key, f"Invalid value: {value!r}: must be true or false"))
                new[key] = bool(value)
            elif key == "apiLatency":
                value = 0.0 if value is None else value
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 600:
                    errors.append((key, f"Invalid value: {value!r}: must be seconds between 0 and 600"))
                new[key] = value
            elif key == "probeDropFraction":
                value = 0.0 if value is None else value
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    errors.append((key, f"Invalid value: {value!r}: must be a fraction between 0 and 1"))
                new[key] = value
            elif key == "unreadyPods":
                if value is None:
                    new[key] = {}
                    continue
                if not isinstance(value, dict):
                    errors.append((key, "Invalid value: must be a map of namespace/service to a count or \"all\""))
                    continue
                merged = dict(new[key])
                for ref, count in value.items():
                    if "/" not in ref:
                        errors.append((f"unreadyPods[{ref}]", "Invalid value: key must be namespace/service"))
                    elif count is None or count == 0:
                        merged.pop(ref, None)
                    elif count == "all" or (isinstance(count, int) and not isinstance(count, bool) and count > 0):
                        merged[ref] = count
                    else:
                        errors.append((f"unreadyPods[{ref}]", f"Invalid value: {count!r}: must be a positive integer or \"all\""))
                new[key] = merged
            else:
                errors.append((key, "Unsupported value: unknown chaos switch"))
        if errors:
            raise invalid("Chaos", "chaos", errors)
        for key, value in new.items():
            setattr(self, key, value)

    def heal(self) -> None:
        self.__init__()  # type: ignore[misc]

    def forced_unready(self) -> dict[str, int]:
        """``unreadyPods`` as counts (``all`` is a count larger than any service has)."""
        return {ref: (10**9 if count == "all" else int(count)) for ref, count in self.unreadyPods.items()}

    def drop_probe(self) -> bool:
        return self.probeDropFraction > 0 and random.random() < self.probeDropFraction
