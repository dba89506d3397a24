"""The workers of one `rawpost serve` tell each other of their own writes at once.

A worker that changed a row drops it from its own cache before it answers; its sibling
workers would otherwise learn of it only from their next poll of the database's change
log, up to 50 ms later, and a client that writes and then reads over a new connection
(another worker) could read the old answer in between. So the writer also appends the
change to this ring in a file the instance's workers map into memory, and every worker
reads the ring's head (one 8-byte load) before each cache lookup: a read that reaches
any worker after the write's answer left sees the change. Why not a library: the
sharing is between the processes granian starts, which share nothing else but the
environment, and it must cost no system call on the read path (a pipe or a socket
would).

Layout: an 8-byte event counter (`head`), then SLOTS slots of SLOT bytes: the event's
number (8 bytes), its length (1 byte), its text (`p:<post>:<author>`, `u:<user>`, `*`).
Writers serialise on flock(); a slot's number is written after its text and the head
after the slot, so a reader that sees the head sees the slot. A reader that falls more
than SLOTS events behind, or reads a slot being rewritten, treats it as `*`.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct

SLOTS = 4096
SLOT = 128
_HEAD = struct.Struct("<Q")
_SLOT_HEAD = struct.Struct("<QB")
SIZE = 64 + SLOTS * SLOT
MAX_EVENT = SLOT - _SLOT_HEAD.size


def create(path: str) -> None:
    """Make the ring's file (by `rawpost serve`, before the workers start)."""
    with open(path, "wb") as f:
        f.write(bytes(SIZE))  # not sparse: a full disk fails here, not in a worker


class Bus:
    """One worker's view of the ring."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, SIZE)
        self._seen = self._head()

    def close(self) -> None:
        with contextlib.suppress(BufferError, ValueError):
            self._map.close()
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _head(self) -> int:
        head: int = _HEAD.unpack_from(self._map, 0)[0]
        return head

    def publish(self, event: str) -> None:
        data = event.encode()
        if len(data) > MAX_EVENT:
            data = b"*"
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            number = self._head() + 1
            at = 64 + (number % SLOTS) * SLOT
            # The slot's number goes to 0 while its text changes (a reader that finds 0,
            # or another number, after reading the text treats the slot as lost).
            _SLOT_HEAD.pack_into(self._map, at, 0, 0)
            self._map[at + _SLOT_HEAD.size : at + _SLOT_HEAD.size + len(data)] = data
            _SLOT_HEAD.pack_into(self._map, at, number, len(data))
            _HEAD.pack_into(self._map, 0, number)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def pending(self) -> bool:
        return self._head() != self._seen

    def read(self) -> list[str]:
        """Events appended since the last read (its own included: dropping twice is
        harmless)."""
        head = self._head()
        if head == self._seen:
            return []
        start, self._seen = self._seen, head
        if head - start > SLOTS or head < start:
            return ["*"]
        events = []
        for number in range(start + 1, head + 1):
            at = 64 + (number % SLOTS) * SLOT
            seq, length = _SLOT_HEAD.unpack_from(self._map, at)
            text = bytes(self._map[at + _SLOT_HEAD.size : at + _SLOT_HEAD.size + length])
            if seq != number or _SLOT_HEAD.unpack_from(self._map, at)[0] != number:
                return ["*"]  # overwritten: this worker fell too far behind
            events.append(text.decode("ascii", "replace"))
        return events
