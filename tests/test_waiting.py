"""The waiting room between fetch and parse: a few bodies wait in memory, the rest in files,
every one comes back byte-exact and in its turn, and nothing is left on disk."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from aggregator.errors import SourceError
from aggregator.models import Document
from aggregator.pipeline.waiting import WaitingRoom


def _document(number: int) -> Document:
    body = f"<rss><channel><title>feed {number}</title></channel></rss>".encode() * 100
    return Document(source=f"s{number}", origin=f"http://127.0.0.1/{number}.xml", data=body)


def test_bodies_beyond_the_places_and_the_memory_wait_in_files_and_come_back_whole() -> None:
    async def scenario() -> tuple[list[bytes], list[int], int, list[str]]:
        room = WaitingRoom(places=2, in_memory=1)
        held: list[bytes] = []
        largest: list[int] = []
        inside = 0

        async def one(document: Document) -> None:
            nonlocal inside
            ticket = room.ticket(document)
            async with ticket as back:
                inside += 1
                largest.append(inside)
                await asyncio.sleep(0.01)
                held.append(back.data)
                inside -= 1

        documents = [_document(n) for n in range(8)]
        folder_files: list[str] = []
        tasks = [asyncio.ensure_future(one(document)) for document in documents]
        await asyncio.sleep(0)  # every ticket taken; two got places, the others wait
        if room._folder is not None:
            folder_files = sorted(os.listdir(room._folder.name))
        await asyncio.gather(*tasks)
        spilled = room.spilled
        room.close()
        return held, largest, spilled, folder_files

    held, largest, spilled, files = asyncio.run(scenario())
    assert sorted(held) == sorted(_document(n).data for n in range(8))
    assert max(largest) == 2  # never more than the places at once
    assert spilled == 5  # 2 had places, 1 waited in memory, the other 5 in files
    assert len(files) == 5


def test_a_free_place_never_writes_a_file(tmp_path: Path) -> None:
    async def scenario() -> int:
        room = WaitingRoom(places=4, in_memory=0)
        for number in range(10):
            async with room.ticket(_document(number)) as back:
                assert back.data == _document(number).data
        room.close()
        return room.spilled

    assert asyncio.run(scenario()) == 0


def test_closing_the_room_removes_its_folder_and_a_cancelled_wait_its_file() -> None:
    async def scenario() -> tuple[str, list[str]]:
        room = WaitingRoom(places=1, in_memory=0)
        first = room.ticket(_document(0))
        await first.__aenter__()
        second = room.ticket(_document(1))  # no place and no memory left: a file
        assert room._folder is not None
        folder = room._folder.name
        waiting = asyncio.ensure_future(second.__aenter__())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        left = os.listdir(folder)
        await first.__aexit__(None, None, None)
        room.close()
        return folder, left

    folder, left = asyncio.run(scenario())
    assert left == []
    assert not Path(folder).exists()


def test_a_body_whose_file_vanished_fails_its_source_by_name() -> None:
    async def scenario() -> None:
        room = WaitingRoom(places=1, in_memory=0)
        first = room.ticket(_document(0))
        await first.__aenter__()
        second = room.ticket(_document(7))
        assert room._folder is not None
        for name in os.listdir(room._folder.name):
            os.unlink(os.path.join(room._folder.name, name))
        await first.__aexit__(None, None, None)
        try:
            with pytest.raises(SourceError, match="s7: body lost while waiting"):
                await second.__aenter__()
            async with room.ticket(_document(2)) as back:  # its place was given back
                assert back.source == "s2"
        finally:
            room.close()

    asyncio.run(scenario())
