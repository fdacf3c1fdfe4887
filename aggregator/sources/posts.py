"""The sources stage: turn a configured source into raw documents for the parse stage.

`posts` sources are folders of Jekyll-style post files. Web kinds (`feed`, `page`) are read by
the fetch stage instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from aggregator.errors import EntryError, SourceError
from aggregator.models import Document


def read_posts(source: str, folder: Path) -> Iterator[Document | EntryError]:
    """Every file below `folder` (hidden files and folders excepted), in name order.

    Raises SourceError when the folder itself cannot be read; a file that cannot be read is
    yielded as an EntryError naming it, so the rest of the folder is still ingested.
    """
    if not folder.is_dir():
        raise SourceError(source, f"posts folder {folder} does not exist or is not a folder")
    try:
        paths = sorted(_post_files(folder))
    except OSError as error:
        raise SourceError(source, f"cannot list {folder}: {error}") from None
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as error:
            yield EntryError(str(path), f"cannot read file: {error.strerror or error}")
            continue
        yield Document(source=source, origin=str(path), data=data)


def _post_files(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file():
            yield path
