"""The zone feed of ``--workers N`` (fedns.feed): every worker that follows it serves the
same answers at the same serial, whether it followed each step or started from a snapshot."""

from __future__ import annotations

import asyncio
import pickle

from fedns.feed import ZoneFeed, frame
from fedns.view import WHOLE_BUILD, ZoneView
from fedns.zone import ZoneConfig

CONFIG = ZoneConfig(apexes=("example.com.",), ns_address="127.0.0.1", negative_ttl=5)


def spec(i: int, target: str = "127.0.0.1") -> dict:
    return {"name": f"s{i}.example.com.", "type": "A", "ttl": 5, "targets": [target]}


def answers(view: ZoneView) -> dict:
    table = view.table
    return {key: (p.flags, p.variants) for key, p in table.answers.items()}


class Worker:
    """A view following the feed's messages, as fedns.worker applies them."""

    def __init__(self) -> None:
        self.view = ZoneView(CONFIG)

    async def apply(self, message: tuple) -> None:
        message = pickle.loads(frame(message)[4:])  # what crosses the socket
        if message[0] == "step":
            self.view.follow_step(message[2], message[1])
        else:
            await self.view.follow_snapshot(message[2], message[3], message[1])


async def test_steps_and_snapshots_give_the_same_table_and_serial():
    sent: list[tuple] = []
    feed = ZoneFeed(sent.append, static=[spec(99)], debounce=0.001, clock=lambda: 1_000_000)
    first = Worker()
    await first.apply(feed.snapshot())
    feed.replace({f"o{i}": spec(i) for i in range(10)})
    await asyncio.sleep(0.01)
    feed.put("o3", spec(3, "127.0.0.3"))
    feed.delete("o4")
    feed.put("o5", spec(5))  # unchanged: nothing sent for it
    await asyncio.sleep(0.01)
    assert [m[0] for m in sent] == ["step", "step"]
    assert sent[1][2] == {"o3": spec(3, "127.0.0.3"), "o4": None}
    for message in sent:
        await first.apply(message)
    late = Worker()  # a worker (re)started now
    await late.apply(feed.snapshot())
    assert first.view.serial == late.view.serial == feed.serial == 1_000_002
    assert answers(first.view) == answers(late.view)
    assert len(first.view.catalog.merged) == 10  # 9 objects and the static one


async def test_a_change_with_no_record_set_change_still_moves_every_serial():
    sent: list[tuple] = []
    feed = ZoneFeed(sent.append, debounce=0.001)
    w = Worker()
    await w.apply(feed.snapshot())
    feed.put("bad", {"name": "x.example.com.", "type": "NOPE"})  # refused: no record set
    await asyncio.sleep(0.01)
    await w.apply(sent[-1])
    assert w.view.serial == feed.serial and w.view.table.serial == feed.serial


async def test_a_large_change_is_one_snapshot():
    sent: list[tuple] = []
    feed = ZoneFeed(sent.append, debounce=0.001)
    feed.replace({f"o{i}": spec(i) for i in range(WHOLE_BUILD + 1)})
    await asyncio.sleep(0.01)
    assert [m[0] for m in sent] == ["snapshot"]
    w = Worker()
    await w.apply(sent[0])
    assert len(w.view.catalog.merged) == WHOLE_BUILD + 1 and w.view.serial == feed.serial
