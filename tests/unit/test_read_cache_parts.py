"""The read cache's parts on their own: the bounded store and the instance's bus."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from service.cache import bus
from service.cache.store import ENTRY_OVERHEAD, Store


def test_the_store_keeps_under_its_byte_cap_dropping_the_least_recently_used() -> None:
    body = b"x" * 1000
    per_entry = len(body) + len("k0000") + ENTRY_OVERHEAD
    store = Store(max_bytes=per_entry * 10, ttl=60)
    for i in range(10):
        assert store.put(f"k{i:04}", body, None, (), store.seq)
    assert store.get("k0000") is not None  # now the most recently used
    store.put("k0010", body, None, (), store.seq)
    assert len(store) == 10 and store.bytes <= store.max_bytes
    assert store.get("k0001") is None  # the least recently used went
    assert store.get("k0000") is not None
    assert store.evictions == 1
    assert not store.put("huge", b"x" * store.max_bytes, None, (), store.seq)


def test_entries_expire_after_the_ttl() -> None:
    store = Store(max_bytes=1 << 20, ttl=0.05)
    store.put("k", b"{}", None, (), store.seq)
    assert store.get("k") is not None
    time.sleep(0.06)
    assert store.get("k") is None and store.bytes == 0


def test_a_drop_removes_every_entry_with_the_tag_and_refuses_reads_begun_before_it() -> None:
    store = Store(max_bytes=1 << 20, ttl=60)
    store.put("post", b"1", None, ("p:1", "u:a"), store.seq)
    store.put("user", b"2", None, ("u:a",), store.seq)
    store.put("other", b"3", None, ("u:b",), store.seq)
    began = store.seq  # a database read starts here...
    assert store.drop(["u:a"]) == 2  # ...a change to user a arrives meanwhile...
    assert store.get("post") is None and store.get("user") is None
    assert store.get("other") is not None
    assert not store.put("user", b"old", None, ("u:a",), began)  # ...its answer is refused
    assert store.put("user", b"new", None, ("u:a",), store.seq)
    assert store.put("b", b"fine", None, ("u:b",), began)  # another row's change: kept
    cleared = store.seq
    store.clear()
    assert len(store) == 0 and store.bytes == 0
    assert not store.put("b", b"old", None, ("u:b",), cleared)


def test_the_bus_carries_one_workers_changes_to_the_others(tmp_path: Path) -> None:
    path = str(tmp_path / "bus")
    bus.create(path)
    writer, reader = bus.Bus(path), bus.Bus(path)
    assert not reader.pending() and reader.read() == []
    writer.publish("p:1:a")
    writer.publish("u:b")
    assert reader.pending()
    assert reader.read() == ["p:1:a", "u:b"]
    assert reader.read() == []
    writer.publish("x" * 500)  # too long for a slot: everything
    assert reader.read() == ["*"]
    for i in range(bus.SLOTS + 1):  # the reader falls more than a ring behind
        writer.publish(f"u:{i}")
    assert reader.read() == ["*"]
    writer.close()
    reader.close()


def _publish(path: str, prefix: str, count: int) -> None:
    ring = bus.Bus(path)
    for i in range(count):
        ring.publish(f"u:{prefix}{i}")
    ring.close()


def test_writers_in_several_processes_lose_no_change(tmp_path: Path) -> None:
    path = str(tmp_path / "bus")
    bus.create(path)
    reader = bus.Bus(path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_publish, args=(path, p, 1000)) for p in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    events = reader.read()
    assert sorted(events) == sorted(f"u:{p}{i}" for p in "ab" for i in range(1000))
