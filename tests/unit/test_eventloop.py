"""apimachinery.eventloop: uvloop when importable, stock asyncio when not (issue 12).

The stock path is what a platform without uvloop runs, so it is run here with uvloop hidden
(``sys.modules["uvloop"] = None`` makes ``import uvloop`` fail as it does where it is not
installed), not only assumed to work."""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest

from apimachinery import eventloop

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _work() -> tuple[str, list[str]]:
    """A little of what every process does: tasks, timers, an event, a thread hand-off."""
    seen: list[str] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, lambda: (seen.append("timer"), done.set()))
    task = asyncio.create_task(asyncio.sleep(0, result="task"))
    seen.append(await task)
    seen.append(await loop.run_in_executor(None, lambda: "thread"))
    await asyncio.wait_for(done.wait(), 5)
    return eventloop.loop_name(), seen


@pytest.fixture
def no_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    monkeypatch.delenv(eventloop.ENV, raising=False)


def test_without_uvloop_the_stock_loop_runs(no_uvloop: None) -> None:
    assert eventloop.loop_factory() is None
    name, seen = eventloop.run(_work())
    assert name == "asyncio"
    assert seen == ["task", "thread", "timer"]


@pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed here")
def test_with_uvloop_it_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.ENV, raising=False)
    name, seen = eventloop.run(_work())
    assert name == "uvloop"
    assert seen == ["task", "thread", "timer"]


@pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed here")
def test_the_environment_can_force_the_stock_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "asyncio")
    assert eventloop.run(_work())[0] == "asyncio"
    monkeypatch.setenv(eventloop.ENV, " UVLOOP ")
    assert eventloop.run(_work())[0] == "uvloop"


def test_asking_for_a_missing_uvloop_is_one_clear_error(no_uvloop: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "uvloop")
    with pytest.raises(eventloop.EventLoopUnavailable, match="uvloop cannot be imported"):
        eventloop.loop_factory()
    coro = _work()
    with pytest.raises(SystemExit, match=r"^Error: UBERNETES_EVENT_LOOP=uvloop but uvloop cannot be imported"):
        eventloop.run(coro)
    assert coro.cr_frame is None  # closed, so no "never awaited" warning


def test_an_unknown_choice_names_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "trio")
    with pytest.raises(SystemExit, match="must be one of auto, uvloop, asyncio"):
        eventloop.run(_work())


def test_the_result_and_exceptions_come_back(no_uvloop: None) -> None:
    async def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        eventloop.run(boom())

    async def value() -> int:
        return 42

    assert eventloop.run(value()) == 42
