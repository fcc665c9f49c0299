"""Settings written once: a dataclass field is the setting, its command-line flag and its docs row.

Every process has settings with defaults (the federation's health periods, a member's lease
period, ...). Writing each default in the dataclass, again in a click option and again in
the docs let them drift (issue 11 found defaults in three places). A field declared with
:func:`flag` carries its default, help text and click details; :func:`click_options` adds
the flags to a command, :func:`take` takes their values back out of the command's keyword
arguments, and :func:`markdown_table` prints the table the docs carry (a test keeps each
copy equal).
"""

from __future__ import annotations

from dataclasses import MISSING, Field, field, fields
from typing import Any, Callable

import click

REQUIRED = None  # the default of a flag that must be given (``required=True``)


def flag(default: Any, help: str, *, type: Any = None, callback: Callable[..., Any] | None = None,  # noqa: A002
         envvar: str | None = None, metavar: str | None = None, required: bool = False,
         multiple: bool = False, show_default: bool = True) -> Any:
    """A dataclass field that is also a flag (``--lease-period`` for ``lease_period``); a bool
    default makes a switch (``--x`` / ``--no-x``, or a plain ``--x`` when it defaults off)."""
    return field(default=default, metadata={
        "help": help, "type": type, "callback": callback, "envvar": envvar, "metavar": metavar,
        "required": required, "multiple": multiple, "show_default": show_default and not required,
    })


def flagged(cls: type) -> list[Field[Any]]:
    """The fields of ``cls`` that are flags, in declaration order."""
    return [f for f in fields(cls) if "help" in f.metadata]


def option_name(f: Field[Any]) -> str:
    return "--" + f.name.replace("_", "-")


def click_options(cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding one click option per flag of ``cls``."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for f in reversed(flagged(cls)):
            meta = f.metadata
            name = option_name(f)
            extra: dict[str, Any] = {k: meta[k] for k in ("type", "callback", "envvar", "metavar") if meta[k] is not None}
            if isinstance(f.default, bool):
                decls = [f"{name}/--no-{name[2:]}"] if f.default else [name]
                if not f.default:
                    extra["is_flag"] = True
            else:
                decls = [name]
            default = () if meta["multiple"] else (None if f.default is MISSING else f.default)
            command = click.option(*decls, f.name, default=default, show_default=meta["show_default"],
                                   required=meta["required"], multiple=meta["multiple"], help=meta["help"],
                                   **extra)(command)
        return command

    return decorate


def take(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """The values of ``cls``'s flags, popped from a command's keyword arguments."""
    return {f.name: options.pop(f.name) for f in flagged(cls) if f.name in options}


def markdown_table(cls: type) -> str:
    """``cls``'s flags as a Markdown table: flag, default, what."""
    rows = ["| flag | default | what |", "|---|---|---|"]
    for f in flagged(cls):
        if f.metadata["required"]:
            default = "required"
        elif isinstance(f.default, bool):
            default = "on" if f.default else "off"
        elif f.default in (None, "", ()):
            default = "-"
        else:
            default = f"`{f.default}`"
        rows.append(f"| `{option_name(f)}` | {default} | {f.metadata['help']} |")
    return "\n".join(rows) + "\n"
