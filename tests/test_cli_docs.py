"""Every command has help and is documented in the README, as sqlite-utils checks its own."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from aggregator.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    names: list[str] = []
    for name, command in sorted(group.commands.items()):
        names.append(f"{prefix}{name}")
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix}{name} ")
    return names


COMMANDS = _commands(main)


def test_the_cli_has_the_spec_commands() -> None:
    assert {"run", "check", "serve", "status"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(main, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    short_help = result.output.split("\n\n")[1].strip()
    assert len(short_help) > 20, f"{command}: its help says too little"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"`aggregator {command}" in README, f"README does not document `aggregator {command}`"


def _command(path: str) -> click.Command:
    found: click.Command = main
    for name in path.split():
        assert isinstance(found, click.Group)
        found = found.commands[name]
    return found


def _help(command: str) -> str:
    result = CliRunner().invoke(main, [*command.split(), "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def _examples(text: str) -> list[str]:
    """The example command lines of a help text: those under `Examples:`, from `aggregator` to
    a `#` comment or a shell pipe or redirection."""
    if "Examples:" not in text:
        return []
    block = text.split("Examples:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in block.splitlines()]
    return [
        re.split(r"\s+(?:#|\||>)\s", line, maxsplit=1)[0]
        for line in lines
        if line.startswith("aggregator ")
    ]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_help_shows_examples(command: str) -> None:
    examples = _examples(_help(command))
    assert examples, f"`aggregator {command} --help` shows no example"
    if command:
        assert all(f" {command}" in example for example in examples), examples


def _parse(words: list[str]) -> None:
    """Parse a command line as the CLI would, down to its last subcommand, without running
    anything: an unknown command or option, or a bad value, raises click's UsageError."""
    context = main.make_context("aggregator", list(words))
    command: click.Command = main
    arguments = [*context._protected_args, *context.args]
    while isinstance(command, click.Group) and arguments:
        name, found, arguments = command.resolve_command(context, arguments)
        assert found is not None, name
        context = found.make_context(name or "", arguments, parent=context)
        command = found
        arguments = (
            [*context._protected_args, *context.args] if isinstance(found, click.Group) else []
        )


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_example_in_the_help_is_a_valid_command_line(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The files an example reads (an OPML export) are the user's: here, empty stand-ins.
    monkeypatch.chdir(tmp_path)
    for example in _examples(_help(command)):
        for word in shlex.split(example):
            if word.endswith(".opml") and "import" in example:
                (tmp_path / word).touch()
        try:
            _parse(shlex.split(example)[1:])
        except click.exceptions.Exit as leaving:  # --help or --version: parsed, and done
            assert leaving.exit_code == 0, example
        except click.UsageError as error:
            pytest.fail(f"`{example}` in `aggregator {command} --help`: {error.format_message()}")


def test_the_example_checker_sees_a_bad_example() -> None:
    # Guards the test above: a checker that parses nothing would pass every help text.
    for bad in (["sources", "add", "x"], ["fetch"], ["run", "--onse"], ["nope"]):
        with pytest.raises(click.UsageError):
            _parse(bad)
    _parse(["-c", "x.yaml", "sources", "add", "x", "https://e.org/", "--tag", "t"])


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_option_has_help_and_is_in_the_readme(command: str) -> None:
    for parameter in _command(command).params:
        if not isinstance(parameter, click.Option) or parameter.name == "help":
            continue
        assert parameter.help, f"aggregator {command} {parameter.opts[0]}: no help text"
        longest = max(parameter.opts, key=len)
        assert longest in README, f"README does not mention `aggregator {command} {longest}`"


def test_every_command_the_readme_names_exists() -> None:
    """`aggregator WORDS` in the README names real commands: the docs cannot outlive one."""
    named = re.findall(r"(?:`|^|\$ )aggregator ((?:[a-z][a-z-]* ?)+)", README, flags=re.MULTILINE)
    assert len(named) > 20
    for words in named:
        path = words.split()
        command: click.Command = main
        while path and isinstance(command, click.Group):
            assert path[0] in command.commands, f"README names `aggregator {words.strip()}`"
            command = command.commands[path.pop(0)]


def test_shell_completion_is_produced_and_completes_source_names(tmp_path: Path) -> None:
    """The README's `eval "$(_AGGREGATOR_COMPLETE=bash_source aggregator)"` gives a script,
    and what that script asks for completes commands and the config's source names."""
    script = Path(sys.executable).parent / "aggregator"
    source = subprocess.run(
        [script],
        env={**os.environ, "_AGGREGATOR_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert source.returncode == 0, source.stderr
    assert "_aggregator_completion()" in source.stdout
    assert "complete -o nosort -F _aggregator_completion aggregator" in source.stdout
    assert "_AGGREGATOR_COMPLETE=bash_source aggregator" in README

    config = tmp_path / "aggregator.yaml"
    config.write_text(
        "sources:\n"
        "  - {name: zaobao-china, kind: feed, url: 'https://example.org/a.xml'}\n"
        "  - {name: zaobao-sg, kind: feed, url: 'https://example.org/b.xml'}\n"
        "  - {name: hn, kind: feed, url: 'https://example.org/c.xml'}\n",
        encoding="utf-8",
    )

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        done = subprocess.run(
            [script],
            env={
                **os.environ,
                "_AGGREGATOR_COMPLETE": "bash_complete",
                "COMP_WORDS": line,
                "COMP_CWORD": str(len(words) - 1),
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return [row.split(",", 1)[1] for row in done.stdout.splitlines()]

    assert "fetch" in complete("aggregator fe")
    assert complete(f"aggregator -c {config} fetch zaobao") == ["zaobao-china", "zaobao-sg"]
    assert complete(f"aggregator -c {config} sources disable h") == ["hn"]
