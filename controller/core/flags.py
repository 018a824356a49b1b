"""Flag-ramped exposure: rewrite one flagd flag's ``fractional`` weights, and notice when
someone else has edited it since we last wrote it.

flagd buckets a user by hashing ``flagKey + targetingKey`` into ``[0, sum of weights)``
and walks the variants in the order written, giving each a cumulative range. With the
on-variant *first* and the weights summing to 100, a user is on exactly when their bucket
is below the on-weight; raising the weight only extends that range, so nobody who has the
new variant is ever moved back to the old one. (With two variants the reverse order would
be monotone too, the on-range growing downwards from the top; on-first keeps the on-users
at the bottom of the hash range where a reader expects them. What would break the
property is rewriting the targeting with another bucketing expression or a third variant
in between, which is why the controller refuses targeting it does not own.)

The controller owns a ramped flag's ``targeting`` while the ramp runs. It refuses to take
over a flag whose targeting is something else, and it records a fingerprint of each flag
it writes (annotation :data:`FINGERPRINT_ANNOTATION`) so that a human edit mid-ramp is
detected and reported instead of silently overwritten.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.core import labels

FINGERPRINT_ANNOTATION = labels.FLAG_FINGERPRINTS
TOTAL_WEIGHT = 100


class FlagDefinitionError(ValueError):
    """The definitions cannot be ramped as asked; the message says what was expected."""


def ramp_targeting(on_variant: str, off_variant: str, weight: int) -> dict[str, Any]:
    return {"fractional": [[on_variant, weight], [off_variant, TOTAL_WEIGHT - weight]]}


def ramp_flag(
    definitions: Mapping[str, Any],
    flag_key: str,
    *,
    on_variant: str,
    off_variant: str,
    weight: int,
) -> dict[str, Any]:
    """New definitions in which ``weight`` percent of targeting keys get ``on_variant``.

    The input is not modified. ``defaultVariant`` becomes the off-variant so that a user
    the fractional cannot bucket (no targeting key) falls back to the old behaviour.
    """
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise FlagDefinitionError(f"weight {weight!r}: expected an integer from 0 to 100")
    flag = _flag(definitions, flag_key)
    variants = flag.get("variants")
    if not isinstance(variants, dict):
        raise FlagDefinitionError(f"flag {flag_key!r}: has no variants object")
    for variant in (on_variant, off_variant):
        if variant not in variants:
            raise FlagDefinitionError(
                f"flag {flag_key!r}: no variant {variant!r} (variants: {sorted(variants)})"
            )
    if on_variant == off_variant:
        raise FlagDefinitionError(f"flag {flag_key!r}: on and off variant are both {on_variant!r}")
    targeting = flag.get("targeting")
    if targeting not in (None, {}) and ramp_weight(definitions, flag_key, on_variant) is None:
        raise FlagDefinitionError(
            f"flag {flag_key!r}: has its own targeting {json.dumps(targeting)[:120]}; "
            f"expected none or a fractional ramp of {on_variant!r}/{off_variant!r} "
            "(the controller does not overwrite targeting it does not own)"
        )
    result = copy.deepcopy(dict(definitions))
    new_flag = result["flags"][flag_key]
    new_flag["state"] = "ENABLED"
    new_flag["defaultVariant"] = off_variant
    new_flag["targeting"] = ramp_targeting(on_variant, off_variant, weight)
    return result


def disable_flag(
    definitions: Mapping[str, Any], flag_key: str, *, on_variant: str, off_variant: str
) -> dict[str, Any]:
    """Everyone back on the off-variant: the first step of a rollback."""
    return ramp_flag(
        definitions, flag_key, on_variant=on_variant, off_variant=off_variant, weight=0
    )


def ramp_weight(definitions: Mapping[str, Any], flag_key: str, on_variant: str) -> int | None:
    """The on-variant weight of a ramp this module wrote, or None if the flag is not one."""
    try:
        flag = _flag(definitions, flag_key)
    except FlagDefinitionError:
        return None
    targeting = flag.get("targeting")
    if not isinstance(targeting, dict) or set(targeting) != {"fractional"}:
        return None
    pairs = targeting["fractional"]
    if not (
        isinstance(pairs, list)
        and len(pairs) == 2
        and all(isinstance(p, list) and len(p) == 2 for p in pairs)
        and pairs[0][0] == on_variant
        and all(isinstance(p[1], int) and not isinstance(p[1], bool) for p in pairs)
        and pairs[0][1] + pairs[1][1] == TOTAL_WEIGHT
    ):
        return None
    weight: int = pairs[0][1]
    return weight


def flag_fingerprint(definitions: Mapping[str, Any], flag_key: str) -> str | None:
    """A stable hash of one flag's whole definition; None when the flag is absent."""
    flags = definitions.get("flags")
    if not isinstance(flags, Mapping) or flag_key not in flags:
        return None
    canonical = json.dumps(flags[flag_key], sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EditCheck:
    edited: bool
    reason: str = ""


def detect_foreign_edit(
    definitions: Mapping[str, Any], flag_key: str, last_written: str | None
) -> EditCheck:
    """Has the flag changed since the controller last wrote it (fingerprint ``last_written``)?

    No fingerprint means the controller has not written this flag yet: nothing to compare.
    """
    if last_written is None:
        return EditCheck(False)
    now = flag_fingerprint(definitions, flag_key)
    if now is None:
        return EditCheck(True, f"flag {flag_key!r} was removed by someone else mid-ramp")
    if now != last_written:
        return EditCheck(
            True,
            f"flag {flag_key!r} was edited by someone else mid-ramp (fingerprint {now[:19]}, "
            f"last written {last_written[:19]}); not overwriting it",
        )
    return EditCheck(False)


def parse_fingerprints(annotation: str | None) -> dict[str, str] | None:
    """The flag-key -> fingerprint map in :data:`FINGERPRINT_ANNOTATION`.

    {} when there is no annotation; None when it is there but garbled (someone edited our
    bookkeeping, so nothing about the flag can be trusted to be ours).
    """
    if annotation is None:
        return {}
    try:
        data = json.loads(annotation)
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return None
    return {str(k): str(v) for k, v in data.items()}


def render_fingerprints(fingerprints: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(fingerprints.items())), separators=(",", ":"))


def _flag(definitions: Mapping[str, Any], flag_key: str) -> dict[str, Any]:
    flags = definitions.get("flags")
    if not isinstance(flags, dict):
        raise FlagDefinitionError("definitions have no 'flags' object")
    flag = flags.get(flag_key)
    if not isinstance(flag, dict):
        raise FlagDefinitionError(f"flag {flag_key!r}: not found (flags: {sorted(flags)[:10]})")
    return flag
