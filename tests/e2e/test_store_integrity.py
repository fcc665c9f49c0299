"""A file store has one owner and is sound when opened (security issue: two Medium items).

Two API servers on one SQLite file each kept their own current resourceVersion, so about one
write in seven failed with ``UNIQUE constraint failed`` and neither saw the other's events;
the store now holds an exclusive lock on ``PATH.lock`` and a second opener is refused. A
garbage, truncated or partly overwritten file gave a traceback at start or a 500 on a later
watch; it is now refused at open with one sentence. The unit tests open stores in this
process; the others run real ``ubernetes federation-apiserver`` processes on loopback.
"""

from __future__ import annotations

import gc
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from federation.launch.localfed import free_port
from federation.storage.store import SQLiteStore, StoreDamaged, StoreLock, StoreLocked, StoreOpenError, lock_path
from tests.conftest import apiserver_process

SVC = "/api/v1/namespaces/default/services"
DAMAGED = "is damaged: "
ADVICE = "restore it from a backup or move it aside"


def obj(name: str, size: int = 300) -> dict:
    return {"metadata": {"name": name}, "spec": {"pad": "x" * size}}


def filled_store(path: Path, count: int = 1500) -> Path:
    """A closed store of ``count`` objects (and as many events) spanning many pages. Closing
    the last connection checkpoints the WAL into the main file and removes it, so all the
    data is in ``path`` and a damaged copy of it is damaged for real."""
    store = SQLiteStore(str(path))
    for i in range(count):
        store.create("things", "ns", f"t{i}", obj(f"t{i}"))
    store.close()
    assert not Path(f"{path}-wal").exists() and path.stat().st_size > 64 * 4096
    return path


def page_size(path: Path) -> int:
    size = int.from_bytes(path.read_bytes()[16:18], "big")
    return 65536 if size == 1 else size


def truncated_copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    os.truncate(dst, dst.stat().st_size // 2)
    return dst


def overwritten_copy(src: Path, dst: Path) -> Path:
    """``src`` with the page in the middle of the file replaced by random bytes."""
    shutil.copyfile(src, dst)
    size = page_size(dst)
    middle = dst.stat().st_size // size // 2
    with dst.open("r+b") as f:
        f.seek(middle * size)
        f.write(random.Random(7).randbytes(size))
    return dst


def garbage(path: Path) -> Path:
    path.write_bytes(random.Random(3).randbytes(20_000))
    return path


# ------------------------------------------------------------------ one owner (unit)


def test_a_second_open_is_refused_naming_path_and_pid_until_the_first_closes(tmp_path):
    path = str(tmp_path / "s.db")
    first = SQLiteStore(path)
    first.create("things", "ns", "a", obj("a"))
    with pytest.raises(StoreLocked) as info:
        SQLiteStore(path)
    message = str(info.value)
    assert f"store {path} is in use" in message and f"pid {os.getpid()}" in message
    assert Path(lock_path(path)).read_text().strip() == str(os.getpid())
    # The refused opener changed nothing: the first still writes and reads.
    first.create("things", "ns", "b", obj("b"))
    assert [o["metadata"]["name"] for o in first.list("things", "ns")[0]] == ["a", "b"]
    first.close()
    assert Path(lock_path(path)).read_text() == ""  # no stale pid once released
    again = SQLiteStore(path)
    assert again.revision == 2
    again.close()


def test_a_symlink_to_the_store_meets_the_same_lock(tmp_path):
    real = tmp_path / "real.db"
    link = tmp_path / "link.db"
    link.symlink_to(real)
    store = SQLiteStore(str(real))
    with pytest.raises(StoreLocked):
        SQLiteStore(str(link))
    store.close()
    SQLiteStore(str(link)).close()


def test_a_store_dropped_without_close_releases_its_lock(tmp_path):
    path = str(tmp_path / "s.db")
    store = SQLiteStore(path)
    del store
    gc.collect()
    SQLiteStore(path).close()


def test_memory_stores_take_no_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = SQLiteStore(":memory:"), SQLiteStore(":memory:")
    a.create("things", "", "x", obj("x"))
    assert b.get("things", "", "x") is None and a.get("things", "", "x") is not None
    a.close()
    b.close()
    assert list(tmp_path.iterdir()) == []


def test_a_missing_directory_is_a_clear_error(tmp_path):
    path = str(tmp_path / "no-such-dir" / "s.db")
    with pytest.raises(StoreOpenError, match=r"cannot open store .*no-such-dir/s\.db.*No such file or directory"):
        SQLiteStore(path)


# ------------------------------------------------------------------ not damaged (unit)


@pytest.fixture(scope="module")
def good_store(tmp_path_factory) -> Path:
    return filled_store(tmp_path_factory.mktemp("good") / "good.db")


@pytest.mark.parametrize("damage", [
    pytest.param(lambda good, dst: garbage(dst), id="garbage"),
    pytest.param(truncated_copy, id="truncated-to-half"),
    pytest.param(overwritten_copy, id="page-overwritten-in-the-middle"),
])
def test_a_damaged_file_is_refused_at_open(tmp_path, good_store, damage):
    path = damage(good_store, tmp_path / "bad.db")
    before = path.read_bytes()
    with pytest.raises(StoreDamaged) as info:
        SQLiteStore(str(path))
    message = str(info.value)
    assert message.startswith(f"store {path} {DAMAGED}") and ADVICE in message
    assert path.read_bytes() == before  # refused before anything wrote to it
    # The refusal let go of the lock.
    StoreLock(str(path)).release()


def test_the_good_store_the_damage_starts_from_opens(tmp_path, good_store):
    # The control for the test above: an undamaged copy opens with everything in it.
    path = tmp_path / "copy.db"
    shutil.copyfile(good_store, path)
    store = SQLiteStore(str(path))
    items, rv = store.list("things", "ns")
    assert len(items) == 1500 and rv == 1500
    assert len(store.events_page(0, max_events=2000)) == 1500
    store.close()


def test_a_zero_length_file_is_a_new_empty_store(tmp_path):
    # SQLite reads a zero-length file as an empty database, as it does a path that is not
    # there yet; the store does the same (docs/architecture.md).
    path = tmp_path / "empty.db"
    path.touch()
    store = SQLiteStore(str(path))
    assert store.revision == 0 and store.list("things")[0] == []
    store.create("things", "", "a", obj("a"))
    store.close()
    again = SQLiteStore(str(path))
    assert again.revision == 1
    again.close()


def test_another_programs_database_is_refused_untouched(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE objects (key TEXT PRIMARY KEY, value BLOB)")
    db.commit()
    db.close()
    with pytest.raises(StoreOpenError, match="not a federation store .*table objects has columns key, value"):
        SQLiteStore(str(path))
    db = sqlite3.connect(path)
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["objects"]
    db.close()


# ------------------------------------------------------------------ real API server processes


def http(method: str, url: str, body: dict | None = None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        text = resp.read().decode()
        return resp.status, (json.loads(text) if text.startswith("{") else text)


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80}]}}


def run_apiserver(store: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``federation-apiserver`` on ``store``, expecting it to exit by itself."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "federation", "federation-apiserver", "--listen", f"127.0.0.1:{free_port()}",
         "--store", str(store), "--no-controllers"],
        capture_output=True, text=True, timeout=30,
    )
    return done, time.monotonic() - started


def assert_refused(done: subprocess.CompletedProcess[str], elapsed: float, *parts: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert all(p in done.stderr for p in parts), output
    assert "Traceback" not in output, output
    assert elapsed < 10, f"took {elapsed:.1f} s to refuse"


def test_a_second_api_server_on_one_store_exits_and_the_first_keeps_serving(tmp_path):
    store = tmp_path / "fed.db"
    (tmp_path / "first").mkdir()
    (tmp_path / "third").mkdir()
    with apiserver_process(tmp_path / "first", "--store", str(store), "--no-controllers") as (url, first):
        status, before = http("POST", url + SVC, service("before"))
        assert status == 201
        done, elapsed = run_apiserver(store)
        assert_refused(done, elapsed, f"store {store} is in use", f"pid {first.pid}")
        assert http("GET", url + "/healthz") == (200, "ok")
        status, created = http("POST", url + SVC, service("after"))
        # The refused server wrote nothing: the next write is the very next resourceVersion.
        assert status == 201 and int(created["metadata"]["resourceVersion"]) == int(before["metadata"]["resourceVersion"]) + 1
    # The first stopped (SIGTERM): a new one starts on the store and finds both writes.
    assert first.returncode is not None
    with apiserver_process(tmp_path / "third", "--store", str(store), "--no-controllers") as (url, _):
        listed = http("GET", url + SVC)[1]
        assert sorted(o["metadata"]["name"] for o in listed["items"]) == ["after", "before"]
        assert http("POST", url + SVC, service("third"))[0] == 201


@pytest.mark.parametrize("damage", [
    pytest.param(lambda good, dst: garbage(dst), id="garbage"),
    pytest.param(truncated_copy, id="truncated-to-half"),
])
def test_the_api_server_refuses_a_damaged_store(tmp_path, good_store, damage):
    path = damage(good_store, tmp_path / "bad.db")
    done, elapsed = run_apiserver(path)
    assert_refused(done, elapsed, f"store {path} {DAMAGED}", ADVICE)
