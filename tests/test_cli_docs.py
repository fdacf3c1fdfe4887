"""Every command has help and is documented in the README, as sqlite-utils checks its own."""

from __future__ import annotations

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
