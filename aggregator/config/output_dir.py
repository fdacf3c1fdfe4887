"""The output folder: which folder the daemon may take for its feeds, and the names render
writes there.

The daemon writes its feeds to `output.dir` and, at start-up, deletes the temp files its
interrupted writes left there, so the folder must be one of its own: never the root, a home or
a system folder, nor a folder of someone else's files. The config's model checks `output.dir`
with output_dir_problem; render names its marker and temp files with the constants here, so
that what the check takes for ours is what render writes.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

# The output folder: a file render writes to say "this folder is ours" (see output_dir_problem),
# and the prefix of its temp files (render.files.write_atomic), so that start-up cleans up only
# what an interrupted write of ours left.
OUTPUT_MARKER = ".aggregator-output"
OUTPUT_TEMP_PREFIX = ".aggregator-tmp."
# Only render writes these, so a folder holding one has been ours.
_OUTPUT_SIGNATURES = (OUTPUT_MARKER, "all.atom", "feeds.opml")
# What a first render cut short may have left so far: render writes the item pages, the feeds
# (all.* first), style.css and feeds.opml, and index.html last, so a lone index.html (any web
# root has one) is never taken for ours.
_OUTPUT_PARTIAL = frozenset({"items", "tags", "all.rss", "all.json", "style.css"})
# Temp files render left in the output folder before OUTPUT_TEMP_PREFIX: a dot, the target's
# name, mkstemp's random part.
OUTPUT_OLD_TEMP = re.compile(
    r"\.(?:index\.html|feeds\.opml|style\.css|all\.(?:rss|atom|json))\.[a-z0-9_]+\.tmp"
)


def _folders(listed: str) -> tuple[Path, ...]:
    return tuple(Path(folder) for folder in listed.split())


# Folders that hold the system or its users' files: emptying one of them, or filling it with
# feeds, is never what an output folder means.
_SYSTEM_FOLDERS = frozenset(
    _folders(
        "/bin /boot /dev /etc /home /lib /lib32 /lib64 /libx32 /media /mnt /opt /proc /root "
        "/run /sbin /snap /srv /sys /tmp /usr /var /usr/bin /usr/include /usr/lib /usr/lib64 "
        "/usr/libexec /usr/local /usr/local/bin /usr/local/lib /usr/local/sbin /usr/local/share "
        "/usr/sbin /usr/share /usr/src /var/cache /var/lib /var/log /var/mail /var/run "
        "/var/spool /var/tmp /Applications /Library /System /Users /Volumes /private "
        "/private/etc /private/tmp /private/var"
    )
)
# ... and those whose every subfolder belongs to the system too.
_SYSTEM_TREES = _folders(
    "/bin /boot /dev /etc /lib /lib32 /lib64 /libx32 /proc /sbin /sys /usr/bin /usr/include "
    "/usr/lib /usr/lib64 /usr/libexec /usr/sbin /System /private/etc"
)
_HOME_PARENTS = (Path("/home"), Path("/Users"))


def output_dir_problem(folder: Path) -> str | None:
    """Why `folder` must not be the output folder, or None. The daemon writes there and, at
    start-up, deletes the temp files of interrupted writes, so it must be a folder of its own:
    not the root, a home or a system folder, nor a folder of other files (one is ours when it
    holds OUTPUT_MARKER or a feed we wrote, or only what a first render cut short left)."""
    try:
        real = Path(os.path.realpath(folder))
    except (OSError, ValueError) as error:
        return f"cannot be used as a folder: {error}"
    if real == real.parent:
        return "is the root folder"
    if real in _homes() or real.parent in _HOME_PARENTS:
        return "is a home folder"
    if real in _SYSTEM_FOLDERS:
        return "is a system folder"
    for tree in _SYSTEM_TREES:
        if real.is_relative_to(tree):
            return f"is inside {tree}, a system folder"
    try:
        if not real.exists():
            return None
        if not real.is_dir():
            return "is a file, not a folder"
        if any((real / name).exists() for name in _OUTPUT_SIGNATURES):
            return None
        foreign = _foreign_entries(real)
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        return f"holds files the aggregator did not write ({shown})"
    return None


def system_tree(path: Path) -> Path | None:
    """The system tree (/etc, /usr, ...) `path` is in, if it is in one: a service cannot write
    there (systemd's ProtectSystem=strict makes them read-only), nor should anything of ours."""
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError):
        return None
    return next((tree for tree in _SYSTEM_TREES if real.is_relative_to(tree)), None)


def _homes() -> set[Path]:
    homes = {Path("/root")}
    # No HOME and no passwd entry: only the usual places are known.
    with contextlib.suppress(RuntimeError, KeyError, OSError):
        homes.add(Path(os.path.realpath(Path.home())))
    return homes


def _foreign_entries(folder: Path) -> list[str]:
    """Up to four names in `folder` that render never writes (the scan stops there, so a huge
    folder costs no more than a small one)."""
    foreign: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if (
                name in _OUTPUT_PARTIAL
                or name.startswith(OUTPUT_TEMP_PREFIX)
                or OUTPUT_OLD_TEMP.fullmatch(name)
            ):
                continue
            foreign.append(name)
            if len(foreign) > 3:
                break
    return sorted(foreign)
