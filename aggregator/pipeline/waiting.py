"""Fetched documents waiting for their turn at the CPU stages: a few in memory, the rest in files.

A pass fetches far faster than it parses: a thousand feeds arrive in a few seconds, and parsing,
cleaning and storing them takes twenty. Were the fetches held back to the pace of the parsing,
a slow server late in the list would only be asked near the end, and the pass would then wait
out its whole timeout at the end of the pass. Were they not
held back, the bodies would pile up in memory. So fetches run at the network's pace and the
bodies wait here for one of the backlog's places: the first few as they are, the others in a
temporary folder, read back when their turn comes.

    room = WaitingRoom(places=16, in_memory=4)
    ticket = room.ticket(document)    # never waits; may write the body to a file
    async with ticket as document:    # waits for a place; the body is back in memory
        ...                           # (SourceError if its file could not be read back)
    room.close()                      # removes the folder
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from aggregator.errors import SourceError
from aggregator.models import Document

log = logging.getLogger("aggregator")


class WaitingRoom:
    def __init__(self, places: int, in_memory: int) -> None:
        self._places = asyncio.Semaphore(places)
        self._in_memory = in_memory
        self._waiting_in_memory = 0
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._files = 0
        self.spilled = 0  # documents that waited in a file, over the room's life

    def ticket(self, document: Document) -> Ticket:
        """A place in the queue for `document`. The caller should keep no other reference to
        it: a body written to a file is only out of memory once nothing holds it."""
        if self._places.locked() and self._waiting_in_memory >= self._in_memory:
            path = self._write(document)
            if path is not None:
                self.spilled += 1
                return Ticket(self, replace(document, data=b""), path)
        self._waiting_in_memory += 1
        return Ticket(self, document, None)

    def close(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def _write(self, document: Document) -> Path | None:
        try:
            if self._folder is None:
                self._folder = tempfile.TemporaryDirectory(prefix="aggregator-waiting-")
            self._files += 1
            path = Path(self._folder.name) / f"{self._files}.body"
            path.write_bytes(document.data)
        except OSError as error:  # a full or read-only disk: the body waits in memory
            log.warning("%s: cannot keep the body in a temporary file: %s", document.origin, error)
            return None
        return path


class Ticket:
    """One document's wait for a place (see WaitingRoom.ticket)."""

    __slots__ = ("_document", "_path", "_room")

    def __init__(self, room: WaitingRoom, document: Document, path: Path | None) -> None:
        self._room = room
        self._document: Document | None = document
        self._path = path

    async def __aenter__(self) -> Document:
        try:
            await self._room._places.acquire()
        except BaseException:
            self._leave()
            raise
        document, self._document = self._document, None
        assert document is not None
        if self._path is None:
            self._room._waiting_in_memory -= 1
            return document
        try:
            data = self._path.read_bytes()
        except OSError as error:
            self._room._places.release()
            self._leave()
            raise SourceError(document.source, f"body lost while waiting: {error}") from error
        self._leave()
        return replace(document, data=data)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._room._places.release()

    def _leave(self) -> None:
        """Give up the wait: the file goes, and an in-memory body no longer counts."""
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink()
            self._path = None
        elif self._document is not None:
            self._room._waiting_in_memory -= 1
            self._document = None
