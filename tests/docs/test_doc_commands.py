"""Every ``changelane ...`` command the README and docs/ show, in a shell block or quoted in
the text, parses against the real CLI: its subcommands exist, every option it names is an
option of that command, and its arguments pass click's own parsing and type checks. (A file
that a reader creates first, like ``audit.jsonl``, may be missing here; a command quoted in
the text may leave out required options and option values.)"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from controller.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"^[ \t]*```(?:sh|bash|shell|console)\n(.*?)^[ \t]*```", re.M | re.S)
#: A command quoted in running text: `changelane lanes resume LANE`.
INLINE = re.compile(r"`(changelane [^`]+)`")
#: Optional parts written ``[--port N]``: their options are checked, not their values.
OPTIONAL = re.compile(r"\[(-[^\]]*)\]")


@dataclass(frozen=True)
class Shown:
    page: str
    line: str
    #: Quoted in running text, where naming a command without its required options is fine.
    inline: bool = False

    def __str__(self) -> str:
        return f"{self.page}: {self.line}"


def shown_commands() -> list[Shown]:
    out = []
    for page in PAGES:
        text = SHELL_BLOCK.sub("", page.read_text(encoding="utf-8"))
        out += [
            Shown(str(page.relative_to(REPO)), c, inline=True)
            for c in INLINE.findall(text)
            if "..." not in c  # "every `changelane ...` command": not a command
        ]
        for block in SHELL_BLOCK.findall(page.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                for part in re.split(r"&&|\|\|?|;", line.split(" #", 1)[0]):
                    text = part.strip().removeprefix("$ ")
                    if text.startswith("changelane "):
                        out.append(Shown(str(page.relative_to(REPO)), text))
    return out


def _resolve(args: list[str]) -> tuple[click.Command, list[str], str]:
    """The (sub)command the words name, the words left for it, and its path."""
    command: click.Command = cli
    path = ["changelane"]
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(click.Context(command), args[0])
        if sub is None:
            break  # an argument of a group that takes one (e.g. `audit` itself)
        command, path, args = sub, [*path, args[0]], args[1:]
    return command, args, " ".join(path)


def _option_names(command: click.Command) -> set[str]:
    names = {"-h", "--help"}
    for param in command.params:
        names.update(getattr(param, "opts", []))
        names.update(getattr(param, "secondary_opts", []))
    return names


COMMANDS = shown_commands()


def test_the_docs_show_commands() -> None:
    pages = {c.page for c in COMMANDS}
    assert "README.md" in pages and len(COMMANDS) >= 20, pages


def check(shown: Shown, monkeypatch: pytest.MonkeyPatch) -> None:
    optional = OPTIONAL.findall(shown.line)
    words = shlex.split(OPTIONAL.sub(" ", shown.line))[1:]
    command, args, path = _resolve(words)
    known = _option_names(command)
    named = [w.split("=", 1)[0] for w in words + shlex.split(" ".join(optional))]
    unknown = [w for w in named if w.startswith("-") and w not in known and w != "-"]
    assert not unknown, f"{path} has no option {unknown} (shown in {shown})"
    for param in command.params:  # files the reader makes first need not exist here
        if isinstance(param.type, click.Path):
            monkeypatch.setattr(param.type, "exists", False)
    try:
        ctx = command.make_context(path, list(args), resilient_parsing=False)
        left = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if isinstance(command, click.Group) and left:
            command.resolve_command(ctx, left)  # raises for a subcommand that is not there
    except click.exceptions.Exit as done:  # --help: parsed, and says so by exiting 0
        assert done.exit_code == 0, shown
    except click.UsageError as err:
        message = err.format_message()
        left_out = message.startswith("Missing") or message.endswith("requires an argument.")
        if not (shown.inline and left_out):
            pytest.fail(f"{shown}: {message}")


@pytest.mark.parametrize("shown", COMMANDS, ids=str)
def test_a_command_the_docs_show_parses(shown: Shown, monkeypatch: pytest.MonkeyPatch) -> None:
    check(shown, monkeypatch)


@pytest.mark.parametrize(
    "line",
    [
        "changelane demo --no-such-option",
        "changelane no-such-command",
        "changelane lanes no-such-command",
        "changelane audit --file audit.jsonl --outcome exploded",
        "changelane audit --since 1h --workers 2",
        "changelane bench audit --records many",
    ],
)
def test_a_wrong_command_in_the_docs_would_fail(line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises((pytest.fail.Exception, AssertionError)):
        check(Shown("example", line), monkeypatch)
