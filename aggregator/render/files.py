"""Writing output files so that readers and the HTTP server never see a partial file, and so that
an unchanged file keeps its mtime (its ETag and Last-Modified stay valid for clients)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.config.output_dir import OUTPUT_OLD_TEMP, OUTPUT_TEMP_PREFIX
from aggregator.errors import RenderError
from aggregator.nodes import local_process_gone, node_name

# Served files must be readable by a web server running as another user; mkstemp gives 0600.
_FILE_MODE = 0o644
# A temp file of another machine (an output folder several nodes share) older than this was
# left by a write that crashed: a write takes seconds.
_FOREIGN_TEMP_AGE = 3600.0


def _writer() -> str:
    """Who writes a temp file, in its name: this node, `host:pid` as `host+pid+` (`+` is in no
    host name)."""
    return node_name().replace(":", "+") + "+"


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise RenderError(f"{path}: cannot read the current file: {exc}") from exc


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step: a temp file in the same folder, fsynced, renamed."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(
            dir=folder, prefix=f"{OUTPUT_TEMP_PREFIX}{_writer()}{path.name}.", suffix=".tmp"
        )
    except OSError as exc:
        raise RenderError(f"{path}: cannot create a temporary file: {exc}") from exc
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, _FILE_MODE)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise RenderError(f"{path}: cannot write: {exc}") from exc
    _fsync_dir(folder)


@dataclass(slots=True)
class OutputWriter:
    """Writes files under one folder only when their bytes change, and remembers which did."""

    root: Path
    written: list[Path] = field(default_factory=list)
    unchanged: int = 0
    removed: list[Path] = field(default_factory=list)
    _seen: set[Path] = field(default_factory=set)

    def write(self, relative: str, data: bytes) -> None:
        path = self.root / relative
        if path in self._seen:
            # The same file produced twice in one render would make the report lie.
            raise RenderError(f"{path}: rendered twice in one pass (duplicate feed or slug?)")
        self._seen.add(path)
        if _same_bytes(path, data):
            self.unchanged += 1
            return
        write_atomic(path, data)
        self.written.append(path)

    def remove(self, relative: str) -> bool:
        """Delete a file this render no longer produces (a page past the last one); False when
        there was none."""
        path = self.root / relative
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise RenderError(f"{path}: cannot remove: {exc}") from exc
        self.removed.append(path)
        return True


# Temp names from before OUTPUT_TEMP_PREFIX (".<target>.<mkstemp's random part>.tmp"), by the
# folder they were written in: only the names of what render writes there.
_OLD_TEMPS = {
    "": OUTPUT_OLD_TEMP,
    "tags": re.compile(r"\.[^/]+\.(?:rss|atom|json)\.[a-z0-9_]+\.tmp"),
    "items": re.compile(r"\.[^/]+\.html\.[a-z0-9_]+\.tmp"),
}


def remove_leftovers(root: Path) -> list[Path]:
    """Delete the temp files of writes a crash interrupted (their targets are intact: the
    rename never happened), so they do not pile up or get served.

    Only ours: files named with OUTPUT_TEMP_PREFIX, or with the older names of the files render
    writes, in the output folder, its tags/ and its items/, never further down: whatever else
    the folder holds (a user's own files, a mounted tree) is not ours to delete. And only those
    of writes that are over: a temp file names the machine and process writing it, and in an
    output folder several nodes share, one of a live process here, or a recent one of another
    machine, is a write in progress."""
    removed: list[Path] = []
    for sub, old_name in _OLD_TEMPS.items():
        folder = root / sub if sub else root
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise RenderError(f"{folder}: cannot list it to remove temp files: {exc}") from exc
        for entry in entries:
            name = entry.name
            ours = name.startswith(OUTPUT_TEMP_PREFIX) and name.endswith(".tmp")
            if not (ours or old_name.fullmatch(name)):
                continue
            if ours and _in_progress(entry):
                continue
            # A link or folder by that name was not made by mkstemp.
            if not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _in_progress(entry: os.DirEntry[str]) -> bool:
    """Whether a temp file named with its writer belongs to a write that may still finish."""
    parts = entry.name[len(OUTPUT_TEMP_PREFIX) :].split("+", 2)
    if len(parts) < 3 or not parts[1].isdigit():
        return False  # named before temp files named their writer
    writer = f"{parts[0]}:{parts[1]}"
    if parts[0] == socket.gethostname():
        return writer != node_name() and not local_process_gone(writer)
    try:
        age = time.time() - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return False
    return age < _FOREIGN_TEMP_AGE
