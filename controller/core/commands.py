"""The human command annotation, ``changelane.dev/command: "<verb> by <identity>"``: the
CLI writes it on a LaneRelease, the controller reads it, decides, and removes it. One
codec for both sides."""

from __future__ import annotations

from controller.core.labels import COMMAND as COMMAND_ANNOTATION
from controller.core.release_machine import CommandKind, HumanCommand

__all__ = ["COMMAND_ANNOTATION", "decode_command", "encode_command"]

UNKNOWN_ACTOR = "unknown"


def encode_command(kind: CommandKind, actor: str) -> str:
    return f"{kind.value} by {actor}"


def decode_command(text: object) -> HumanCommand | None:
    """The command in an annotation value; None when there is none or the verb is not
    one the controller knows (left for the CLI's status to show)."""
    if not text:
        return None
    verb, _, rest = str(text).partition(" ")
    actor = rest.removeprefix("by ").strip() or UNKNOWN_ACTOR
    try:
        return HumanCommand(CommandKind(verb), actor)
    except ValueError:
        return None
