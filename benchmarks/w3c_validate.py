"""The W3C Feed Validator over every RSS and Atom file one real-world pass writes.

    .venv/bin/python benchmarks/w3c_validate.py --validator ~/src/feedvalidator
    .venv/bin/python benchmarks/w3c_validate.py --validator PATH --sets real --warnings

The validator is the W3C's own code (https://github.com/w3c/feedvalidator, Python 3); it is not
on PyPI, and none of it is in this repository. Get it once, outside the repository:

    git clone https://github.com/w3c/feedvalidator ~/src/feedvalidator
    .venv/bin/python -m pip install --target ~/src/feedvalidator/lib html5lib

(html5lib is the one package it imports that this project does not need; installing it into
the virtualenv works too). `--validator PATH` puts PATH/src (where its `feedvalidator` package
lives; PATH itself when it holds the package) and PATH/lib, when there, on sys.path.

The pass is benchmarks/realworld.py's: one `feed` source per file of ../shared/realworld (the
real and edge sets by default, served from 127.0.0.1), one `aggregator run --once`. Then every
*.rss, *.atom and *.xml file of the output folder goes to feedvalidator.validateString, with the
URL the file is published at (output.base_url + its path) as the base. Nothing is fetched: the
network is closed to the validator while it runs. Prints feeds validated, feeds with errors, and
the errors (the validator's Error events; warnings with --warnings) by type, each with its first
example; exits 1 when there is any error.
"""

from __future__ import annotations

import argparse
import importlib
import socket
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.config import load_config
from tests.realworld import SETS, corpus_files, run_once, serve_corpus, write_config

FEED_SUFFIXES = (".rss", ".atom", ".xml")


@dataclass(slots=True)
class Tally:
    feeds: int = 0
    feeds_with_errors: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)


def load_validator(checkout: Path) -> tuple[ModuleType, ModuleType]:
    """feedvalidator and its logging module (whose Error and Warning classes sort events)."""
    package_home = checkout / "src" if (checkout / "src" / "feedvalidator").is_dir() else checkout
    if not (package_home / "feedvalidator").is_dir():
        sys.exit(f"{checkout}: no feedvalidator package in it or in its src/ folder")
    for folder in (checkout / "lib", package_home):
        if folder.is_dir():
            sys.path.insert(0, str(folder))
    try:
        return (
            importlib.import_module("feedvalidator"),
            importlib.import_module("feedvalidator.logging"),
        )
    except ImportError as error:
        sys.exit(f"cannot import the validator from {package_home}: {error} (see --help)")


@contextmanager
def offline() -> Iterator[None]:
    """No name lookups and no connections while the validator runs."""

    def refuse(*args: object, **kwargs: object) -> Any:
        raise OSError("the network is closed while validating")

    saved = socket.getaddrinfo, socket.gethostbyname, socket.create_connection
    socket.getaddrinfo = socket.gethostbyname = socket.create_connection = refuse
    try:
        yield
    finally:
        socket.getaddrinfo, socket.gethostbyname, socket.create_connection = saved


def validate_folder(validator: ModuleType, events: ModuleType, root: Path, base_url: str) -> Tally:
    tally = Tally()
    paths = sorted(path for path in root.rglob("*") if path.suffix in FEED_SUFFIXES)
    with offline():
        for path in paths:
            relative = path.relative_to(root).as_posix()
            result = validator.validateString(path.read_bytes(), base=base_url + quote(relative))
            tally.feeds += 1
            found_error = False
            for event in result["loggedEvents"]:
                if isinstance(event, events.Error):
                    counter, found_error = tally.errors, True
                elif isinstance(event, events.Warning):
                    counter = tally.warnings
                else:
                    continue
                kind = type(event).__name__
                counter[kind] += 1
                params = event.params
                tally.examples.setdefault(
                    kind,
                    f"{relative}:{params.get('line')} <{params.get('element')}> "
                    f"{str(params.get('value', ''))[:80]!r}",
                )
            tally.feeds_with_errors += found_error
    return tally


def print_table(title: str, counts: Counter[str], examples: dict[str, str]) -> None:
    print(f"\n| {title} | count | first example |")
    print("|---|---|---|")
    for kind, count in counts.most_common():
        print(f"| {kind} | {count} | {examples[kind]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validator", type=Path, required=True, help="a feedvalidator checkout")
    parser.add_argument("--sets", nargs="+", default=["real", "edge"], choices=SETS)
    parser.add_argument("--warnings", action="store_true", help="list warnings by type too")
    args = parser.parse_args()
    validator, events = load_validator(args.validator.expanduser().resolve())
    files = corpus_files(tuple(args.sets))
    with tempfile.TemporaryDirectory() as tmp:
        with serve_corpus() as base_url:
            config = write_config(Path(tmp), files, base_url)
            done = run_once(config)
        print(f"run --once: exit {done.returncode}, {len(files)} sources")
        if done.returncode != 0:
            print(done.stderr[-4000:])
            sys.exit(1)
        output = load_config(config).output
        tally = validate_folder(validator, events, output.dir, output.base_url)
    print("\n| feeds validated | feeds with errors | errors | warnings |")
    print("|---|---|---|---|")
    print(
        f"| {tally.feeds} | {tally.feeds_with_errors} | {sum(tally.errors.values())} "
        f"| {sum(tally.warnings.values())} |"
    )
    if tally.errors:
        print_table("error", tally.errors, tally.examples)
    if args.warnings and tally.warnings:
        print_table("warning", tally.warnings, tally.examples)
    sys.exit(1 if tally.errors else 0)


if __name__ == "__main__":
    main()
