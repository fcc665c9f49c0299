"""The report viewer's routes: experiment reports under ``--reports-dir``, listed, opened
(the incident timeline of :mod:`federation.ui.reporttimeline`), their picture, and uploads.

A report is a directory holding an ``events.jsonl`` (what ``ubernetes experiment run``
writes: federation/experiments/runner.py), with its ``timeline.png`` and ``report.md``
when the run drew them. Its *name* is its path under the reports directory
(``cluster-crash``, ``crash-compare/kubefed``, ``uploads/mine``).

Names come from the network and become paths on this host, so a name is checked before
any file is touched: segments of letters, digits, ``.``, ``_`` and ``-`` that do not start
with a dot (no ``..``, no absolute path, no backslash), at most :data:`MAX_DEPTH` deep
(400 otherwise); and the directory it resolves to, symbolic links followed, must lie
inside the reports directory and hold an ``events.jsonl`` (404 otherwise, the same answer
as for a report that does not exist). Uploads go under ``uploads/`` only, never over an
existing report, are refused past :attr:`UIConfig.report_upload_bytes` with 413 and a
``Status``, and must parse as an events file before anything is written. Uploading, like
the fault buttons, is for ``system:masters`` (federation/api/auth.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from apimachinery import decoding
from apimachinery import errors as st
from federation.experiments.eventsfile import EventsFileError, parse_bytes
from federation.ui import reporttimeline

EVENTS = "events.jsonl"
PICTURES = ("timeline.png", "compare.png")
MARKDOWN = "report.md"
UPLOADS = "uploads"
MAX_DEPTH = 4
SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a report (None: it can). Pure: no file is looked at."""
    if not name:
        return "a report name must not be empty"
    parts = name.split("/")
    if len(parts) > MAX_DEPTH:
        return f"a report name has at most {MAX_DEPTH} segments separated by /"
    for part in parts:
        if not SEGMENT.match(part):
            return (f"report name segment {part[:40]!r} must be 1-128 letters, digits, '.', '_' or '-', "
                    "not starting with '.'")
    return None


def _checked(name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise st.APIError(400, f"invalid report name {name[:80]!r}: {problem}")
    return name


def resolve(root: Path, name: str) -> Path:
    """The directory of report ``name`` under ``root``: 400 for a bad name, 404 for one that
    does not exist, is not a report, or (through a link) lies outside ``root``."""
    _checked(name)
    base = root.resolve()
    where = (base / name).resolve()
    if not where.is_relative_to(base) or where == base or not (where / EVENTS).is_file():
        raise st.APIError(404, f'reports "{name}" not found')
    return where


def _summary(root: Path, where: Path) -> dict[str, Any]:
    events = where / EVENTS
    with events.open("rb") as f:
        first = f.readline(1 << 20)
    try:
        meta = json.loads(first)
    except ValueError:
        meta = {}
    ok = None
    try:
        expectations = json.loads((where / "summary.json").read_text())["aggregate"]["expectations"]
        ok = all(v["ok"] for v in expectations.values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    stat = events.stat()
    return {
        "name": where.relative_to(root).as_posix(),
        "scenario": meta.get("scenario") if isinstance(meta, dict) else None,
        "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stat.st_mtime)),
        "eventsBytes": stat.st_size,
        "picture": any((where / p).is_file() for p in PICTURES),
        "expectationsMet": ok,
    }


def list_reports(root: Path) -> list[dict[str, Any]]:
    """Every report under ``root`` (at most :data:`MAX_DEPTH` deep, no hidden directory, no
    link leading outside), newest first."""
    base = root.resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        here = Path(dirpath)
        depth = len(here.relative_to(base).parts)
        dirnames[:] = sorted(d for d in dirnames if SEGMENT.match(d)) if depth < MAX_DEPTH else []
        if here != base and EVENTS in filenames and here.resolve().is_relative_to(base):
            found.append(_summary(base, here))
    return sorted(found, key=lambda r: (r["modified"], r["name"]), reverse=True)


def open_report(root: Path, name: str) -> dict[str, Any]:
    where = resolve(root, name)
    try:
        read = parse_bytes((where / EVENTS).read_bytes(), source=f"{name}/{EVENTS}")
    except EventsFileError as err:
        raise st.APIError(422, f'reports "{name}" cannot be drawn: {err}', reason="Invalid") from None
    markdown = (where / MARKDOWN).read_text(errors="replace") if (where / MARKDOWN).is_file() else None
    return {
        "kind": "Report", "name": name, "truncated": read.truncated, "warnings": list(read.warnings),
        "picture": any((where / p).is_file() for p in PICTURES), "markdown": markdown,
        "timeline": reporttimeline.timeline(read.events),
    }


async def _read_part(part: BodyPartReader, budget: list[int], limit: int) -> bytes:
    chunks = []
    while chunk := await part.read_chunk(1 << 16):
        budget[0] += len(chunk)
        if budget[0] > limit:
            raise decoding.too_large(None, limit, "the upload")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_upload(request: web.Request, limit: int) -> dict[str, bytes]:
    """The parts of a ``multipart/form-data`` upload by field name, refusing (413) once more
    than ``limit`` bytes have come, or at once when Content-Length says so."""
    if request.content_length is not None and request.content_length > limit:
        raise decoding.too_large(request.content_length, limit, "the upload")
    if not request.content_type.startswith("multipart/"):
        raise st.APIError(415, f"an upload is multipart/form-data (fields name, events, picture, report), "
                               f"not {request.content_type or 'nothing'}")
    reader = await request.multipart()
    parts: dict[str, bytes] = {}
    budget = [0]
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.name:
            raise st.APIError(400, "an upload's parts are form fields: name, events, picture, report")
        parts[part.name] = await _read_part(part, budget, limit)
    return parts


def store_upload(root: Path, parts: dict[str, bytes]) -> dict[str, Any]:
    """Check an upload and write it as report ``uploads/<name>``; return its summary."""
    unknown = sorted(set(parts) - {"name", "events", "picture", "report"})
    if unknown:
        raise st.APIError(400, f"unknown upload field(s) {', '.join(unknown)}: send name, events, picture, report")
    try:
        leaf = parts.get("name", b"").decode().strip()
    except UnicodeDecodeError:
        raise st.APIError(400, "the report name must be UTF-8 text") from None
    if "/" in leaf:
        raise st.APIError(400, f"invalid report name {leaf[:80]!r}: an upload's name is one segment (it is stored under {UPLOADS}/)")
    name = _checked(f"{UPLOADS}/{leaf}") if leaf else _checked("")
    if "events" not in parts:
        raise st.APIError(400, f"an upload needs its {EVENTS} (field events)")
    try:
        read = parse_bytes(parts["events"], source=EVENTS)
    except EventsFileError as err:
        raise st.APIError(400, f"the upload's {err}") from None
    if not read.events:
        raise st.APIError(400, f"the upload's {EVENTS} holds no event")
    picture = parts.get("picture") or b""
    if picture and not picture.startswith(PNG_MAGIC):
        raise st.APIError(400, "the upload's picture must be a PNG")
    base = root.resolve()
    (base / UPLOADS).mkdir(parents=True, exist_ok=True)
    target = base / name
    if target.exists():
        raise st.APIError(409, f'reports "{name}" already exists', reason="AlreadyExists")
    staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=base / UPLOADS))
    try:
        (staging / EVENTS).write_bytes(parts["events"])
        if picture:
            (staging / PICTURES[0]).write_bytes(picture)
        if parts.get("report"):
            (staging / MARKDOWN).write_bytes(parts["report"])
        os.rename(staging, target)  # all or nothing; fails if the name was taken meanwhile
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        if target.exists():
            raise st.APIError(409, f'reports "{name}" already exists', reason="AlreadyExists") from None
        raise st.APIError(500, f"cannot store the upload: {err.strerror}") from None
    return _summary(base, target)
