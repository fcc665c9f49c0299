"""Kinds as data: what an API server serves for each kind, in one record (issue 11).

A :class:`Kind` says where a kind lives (group, version, plural, scope), how people name it
(kind, singular, short names, categories), what the server lets clients do with it (verbs,
subresources) and the kind's own hooks (defaulting, validation, the name rule). Discovery,
OpenAPI, routing, the CLI's names and paths, Status messages and the store's keys are all
derived from it, so the federation, every member cluster and the CLI read one table each
(``federation/resources.py``: ALL and MEMBER) instead of writing their
own, and adding a kind is adding one record.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from apimachinery.meta import check_label_name

Errors = list[tuple[str, str]]  # (field path, problem), as Kubernetes' field.ErrorList

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_VERBS = ("get", "list", "watch")


def _no_errors(obj: dict[str, Any]) -> Errors:
    return []


def _no_defaults(obj: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    singular: str = ""
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ("status",)
    field_labels: tuple[str, ...] = ()  # field selectors beyond metadata.name and metadata.namespace
    validate: Callable[[dict[str, Any]], Errors] = field(default=_no_errors)
    default: Callable[[dict[str, Any]], None] = field(default=_no_defaults)
    name_check: Callable[[str], str | None] = check_label_name
    # A kind nothing stores: a create is answered by the server's hook (the reviews kubectl
    # posts for ``auth can-i`` and ``auth whoami``), so it is in discovery and nothing else.
    virtual: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """The store's name for this kind (group-qualified plural)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified(self) -> str:
        """How Status messages name the kind: ``services`` or ``clusters.federation``."""
        return self.key

    @property
    def kubectl_name(self) -> str:
        """kubectl's ``<singular>.<group>``, as in ``service/web`` and ``cluster.federation/c1``."""
        return f"{self.singular}.{self.group}" if self.group else self.singular

    @property
    def names(self) -> tuple[str, ...]:
        """The names a user types for this kind, and completion offers (``services``, ``svc``)."""
        return tuple(dict.fromkeys(n for n in (self.plural, self.singular, *self.short_names) if n))

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every name that finds this kind: :attr:`names` and the group-qualified ones."""
        return tuple(dict.fromkeys((*self.names, self.key, self.kubectl_name)))

    def base_path(self, namespace: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"

    def path(self, *, namespace: str | None = None, name: str | None = None) -> str:
        """The URL path of the collection (or of ``name``), with both parts quoted."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            root += f"/namespaces/{urllib.parse.quote(namespace, safe='')}"
        root += f"/{self.plural}"
        return root + (f"/{urllib.parse.quote(name, safe='')}" if name is not None else "")

    def allows(self, verb: str) -> bool:
        return verb in self.verbs


class KindTable:
    """A server's (or the CLI's) kinds, found by any name a user or a body gives."""

    def __init__(self, kinds: Iterable[Kind]) -> None:
        self.kinds = list(kinds)
        self._by_alias = {alias: k for k in self.kinds for alias in k.aliases}
        self._by_kind = {(k.api_version, k.kind): k for k in self.kinds}

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.kinds)

    def __len__(self) -> int:
        return len(self.kinds)

    def by_alias(self, name: str) -> Kind | None:
        return self._by_alias.get(name.lower())

    def by_kind(self, api_version: str, kind: str) -> Kind | None:
        return self._by_kind.get((api_version, kind))

    def describe(self) -> str:
        return ", ".join(f"{k.kind} ({k.api_version})" for k in self.kinds)
