"""What `aggregator check` looks at beyond the file itself: what a run would hit on this machine,
as this user. A config can be valid YAML with every key right and still be of no use: no
sources at all, a posts folder that is not there, a store or output folder the daemon cannot
write (a systemd service may write only its StateDirectory), relative paths that meant one
place beside the repo and mean another under /etc.

Errors are what a run would fail on; warnings are what may well be fine (a relative path that
resolves outside the config's folder is right where the config stays put, wrong where it is
copied). Each is placed at its key's line and column by the loader (loader.place).

Only `check` runs this, never the loader: a daemon whose posts folder is on a mount that comes
late should start and report that one source failing, not refuse to start at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.error import YAMLError

from aggregator.config.bounds import Location
from aggregator.config.loader import place, raw_document
from aggregator.config.model import Config, OutputConfig, StoreConfig
from aggregator.config.output_dir import system_tree
from aggregator.errors import ConfigError, ConfigProblem

Found = list[tuple[Location, str]]  # key paths and what is wrong there, before placing

# Where a systemd install keeps the config, and the state the unit lets the daemon write.
_SYSTEMD_CONFIG = Path("/etc/aggregator")
_STATE = Path("/var/lib/aggregator")


@dataclass(frozen=True, slots=True)
class Preflight:
    """`check`'s findings, placed in the file: what would fail, and what may."""

    errors: list[ConfigProblem]
    warnings: list[ConfigProblem]


def preflight(config: Config) -> Preflight:
    """What a run of `config` would hit here, as this user (see the module's doc)."""
    try:
        raw = raw_document(config.path)
    except (ConfigError, YAMLError):  # it loaded a moment ago: a file swapped since
        raw = {}
    errors: Found = []
    warnings: Found = []
    errors += _no_sources(config)
    warnings += _all_disabled(config)
    errors += _posts_folders(config)
    store_errors, store_warnings = _store(config, raw)
    errors += store_errors
    warnings += store_warnings
    output_errors, output_warnings = _output(config, raw)
    errors += output_errors
    warnings += output_warnings
    warnings += _relative_posts(config, raw)
    return Preflight(
        errors=place(config.path, errors),
        warnings=place(config.path, [(where, f"warning: {said}") for where, said in warnings]),
    )


def _no_sources(config: Config) -> Found:
    if config.sources:
        return []
    return [
        (
            ("sources",),
            "no sources: a run would fetch nothing; add one with `aggregator sources add NAME "
            "URL` or `aggregator opml import FILE`, or copy a block from "
            "config/aggregator.example.yaml",
        )
    ]


def _all_disabled(config: Config) -> Found:
    if not config.sources or any(source.enabled for source in config.sources):
        return []
    return [(("sources",), "every source is disabled (enabled: false): a run fetches nothing")]


def _posts_folders(config: Config) -> Iterator[tuple[Location, str]]:
    for index, source in enumerate(config.sources):
        if source.kind != "posts" or source.path is None or not source.enabled:
            continue
        where: Location = ("sources", index, "path")
        folder = source.path
        if not folder.exists():
            yield where, f"{folder} does not exist: a run would fail this source"
        elif not folder.is_dir():
            yield where, f"{folder} is a file, not a folder of posts"
        elif not os.access(folder, os.R_OK | os.X_OK):
            yield where, f"{folder} cannot be read by {_user()}: a run would fail this source"


def _store(config: Config, raw: dict[str, Any]) -> tuple[Found, Found]:
    database = _sqlite_file(config.store.url)
    if database is None:
        return [], []  # PostgreSQL: reached over the network, which check does not touch
    where: Location = ("store", "url")
    written = _written(raw, "store", "url", StoreConfig.model_fields["url"].default)
    written_path = _sqlite_file(written) if isinstance(written, str) else None
    errors: Found = []
    tree = system_tree(database)
    if tree is not None:
        relative = (
            f" ({str(written_path)!r} is relative to the config's folder)"
            if written_path is not None and not written_path.is_absolute()
            else ""
        )
        errors.append(
            (
                where,
                f"{database}{relative} is inside {tree}, a system folder the daemon may not "
                f"write (a systemd unit's ProtectSystem=strict); keep the store in {_STATE}",
            )
        )
    elif database.is_dir():
        errors.append((where, f"{database} is a folder, not a database file"))
    elif database.exists() and not os.access(database, os.R_OK | os.W_OK):
        errors.append((where, f"{database} cannot be written by {_user()}"))
    else:
        # SQLite writes its journal beside the database: the folder must take new files too.
        problem = _unwritable(database.parent)
        if problem:
            errors.append((where, f"{database}: {problem}"))
    warnings: Found = []
    if written_path is not None and not errors:
        instead = str(_STATE / database.name)
        warnings += _outside(config, where, str(written_path), database, instead)
    return errors, warnings


def _output(config: Config, raw: dict[str, Any]) -> tuple[Found, Found]:
    folder = config.output.dir
    where: Location = ("output", "dir")
    written = _written(raw, "output", "dir", OutputConfig.model_fields["dir"].default)
    errors: Found = []
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            errors.append((where, f"{folder} cannot be written by {_user()}"))
    else:  # a file there is refused by the model already; a missing folder is made at start
        problem = _unwritable(folder)
        if problem:
            errors.append((where, f"{folder}: {problem}"))
    instead = str(_STATE / "public")
    warnings = [] if errors else _outside(config, where, str(written), folder, instead)
    return errors, warnings


def _relative_posts(config: Config, raw: dict[str, Any]) -> Iterator[tuple[Location, str]]:
    listed = raw.get("sources")
    if not isinstance(listed, list):
        return
    for index, source in enumerate(config.sources):
        if source.path is None or index >= len(listed) or not isinstance(listed[index], dict):
            continue
        written = listed[index].get("path")
        if isinstance(written, str) and source.path.exists():  # a missing one is an error
            yield from _outside(config, ("sources", index, "path"), written, source.path)


def _outside(
    config: Config, where: Location, written: str, resolved: Path, instead: str = ""
) -> Found:
    """A warning when `written` is a relative path that climbs out of the config's folder: it
    means another place wherever the config is copied (see _SYSTEMD_CONFIG)."""
    if Path(written).expanduser().is_absolute():
        return []
    home = config.path.resolve().parent
    if resolved.resolve().is_relative_to(home):
        return []
    there = os.path.normpath(_SYSTEMD_CONFIG / written)
    example = f" such as {instead}" if instead else ""
    return [
        (
            where,
            f"{written!r} leaves the config's folder (here it is {resolved}); a relative path "
            f"follows the config file, so in {_SYSTEMD_CONFIG} it would be {there}: use an "
            f"absolute path{example}",
        )
    ]


def _unwritable(folder: Path) -> str | None:
    """Why the daemon could not create files in `folder` (made first if missing), or None."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, so no folder can be made there"
    if not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == folder else f" (to make {folder} in)"
        return f"{existing}{made} cannot be written by {_user()}"
    return None


def _sqlite_file(url: str) -> Path | None:
    scheme, _, rest = url.partition(":///")
    if not scheme.startswith("sqlite") or not rest or rest.startswith(":memory:"):
        return None
    return Path(rest.partition("?")[0])


def _written(raw: dict[str, Any], section: str, key: str, default: object) -> object:
    """What the file says for `section.key`, or the default it falls back to."""
    block = raw.get(section)
    value = block.get(key) if isinstance(block, dict) else None
    return default if value is None else value


def _user() -> str:
    """This process's user, as a message names it (the service's, under systemd)."""
    uid = os.geteuid()
    try:
        import pwd  # noqa: PLC0415 - POSIX only, and only for a problem

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"
