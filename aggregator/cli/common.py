"""What every command module of the CLI shares: exit codes, loading the config or exiting, one
way to say what failed, and "did you mean" for a mistyped name."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click
import click.shell_completion

from aggregator.config import Config, SourceConfig, config_path, load_config
from aggregator.config.edit import ConfigEditError, edit_config
from aggregator.daemon.logs import name_sources
from aggregator.errors import AggregatorError, ConfigError
from aggregator.redact import mask_text, mask_url
from aggregator.urls import canonical_url

if TYPE_CHECKING:
    from aggregator.store import Store

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2

RELOAD_NOTE = "a running daemon picks the change up on SIGHUP (systemctl reload aggregator)"


def config_or_exit(ctx: click.Context) -> Config:
    """The config named on the command line; its problems printed and exit 2 if it is bad."""
    try:
        config = load_config(ctx.obj)
    except ConfigError as error:
        for problem in error.problems:
            say(ctx, str(problem), logging.ERROR)
        ctx.exit(EXIT_BAD_CONFIG)
        raise  # unreachable: ctx.exit raises
    name_sources(source.name for source in config.sources)
    return config


def fail(
    ctx: click.Context, message: str, *, about: object = None, status: int = EXIT_FAILED
) -> NoReturn:
    """`error: ABOUT: MESSAGE` on stderr, then exit. The one place that words a failure, so
    that what failed is named once: a message that starts with what it is about already (an
    AggregatorError names its source, file or URL) is not prefixed again."""
    text = mask_text(message)
    if about is not None:
        subject = mask_text(str(about))
        if not text.startswith(f"{subject}: ") and text != subject:
            text = f"{subject}: {text}"
    say(ctx, f"error: {text}", logging.ERROR)
    ctx.exit(status)
    raise AssertionError("unreachable: ctx.exit raises")


def say(ctx: click.Context, line: str, level: int = logging.INFO) -> None:
    """A line for stderr: as it is, or with --log-format json as a log record like every other
    line there, so that a log shipper reading stderr reads JSON only."""
    if ctx.find_root().params.get("log_format") == "json":
        logging.getLogger("aggregator.cli").log(level, "%s", line)
    else:
        click.echo(line, err=True)


def did_you_mean(name: str, known: Iterable[str], *, what: str = "name") -> str:
    """What to say after "no such NAME": the closest known names (difflib), or all of them
    when there are few, or where to list them."""
    known = sorted(set(known))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if not close:  # case only, or a prefix: `HN` for `hn`, `zaobao` for `zaobao-china`
        folded = name.casefold()
        close = [each for each in known if each.casefold().startswith(folded)][:3]
    if close:
        return "did you mean " + " or ".join(repr(each) for each in close) + "?"
    if not known:
        return f"there is no {what} yet"
    if len(known) <= 8:
        return f"the {what}s are " + ", ".join(known)
    return f"{len(known)} {what}s; `aggregator sources list` shows them"


def complete_source(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """The config's source names that start with what was typed, for shell completion. The
    group's callback has not run while completing: the config is found from its options."""
    root = ctx.find_root()
    try:
        config = load_config(config_path(root.params.get("config_file")))
    except (AggregatorError, OSError):
        return []  # no config, or a broken one: nothing to offer, and nothing to print
    return [
        click.shell_completion.CompletionItem(source.name, help=source.title or source.kind)
        for source in config.sources
        if source.name.startswith(incomplete)
    ]


def source_or_exit(ctx: click.Context, config: Config, name: str) -> SourceConfig:
    """The config's source `name`; an error with the nearest names (exit 1) if it has none."""
    source = config.source(name)
    if source is None:
        hint = did_you_mean(name, (each.name for each in config.sources), what="source")
        fail(ctx, f"no source named {name!r} in {ctx.obj}; {hint}")
    return source


def with_store(ctx: click.Context, config: Config, work: Callable[[Store], T]) -> T:
    """`work` on the config's store (migrated, closed after); a store error printed, exit 1."""
    # Imported here: the store's imports (SQLAlchemy, Alembic) would slow every --help.
    from aggregator.pipeline.run import open_store

    try:
        store = open_store(config)
        try:
            return work(store)
        finally:
            store.close()
    except AggregatorError as error:
        fail(ctx, str(error))


def edit_or_exit(ctx: click.Context, change: Callable[[str], str]) -> Config:
    """The config file rewritten by `change` (its YAML text in, the new text out), checked and
    saved; what went wrong printed and exit 1 if the edit is refused."""
    try:
        return edit_config(ctx.obj, change)
    except ConfigEditError as error:
        fail(ctx, str(error), about=ctx.obj)


def already_in(config: Config, name: str | None, url: str | None) -> str | None:
    """Why a source of this name or URL (however the URL is spelt) cannot be added: None when
    it can."""
    for index, source in enumerate(config.sources):
        if name is not None and source.name == name:
            return f"a source named {name!r} exists already (sources[{index}])"
        if url and source.url and _same_url(source.url, url):
            return f"{mask_url(url)} is already in the config as {source.name!r} (sources[{index}])"
    return None


def _same_url(left: str, right: str) -> bool:
    return left == right or canonical_url(left) == canonical_url(right)
