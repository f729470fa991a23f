"""Flag parsers shared by several CLI command groups, so their error messages and semantics stay identical."""

from __future__ import annotations

from dockyard.errors import InvalidArgument


def parse_pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    """`--label`/`--opt` KEY=VALUE flags; a bare KEY means an empty value, as in Docker."""
    out = {}
    for v in values:
        k, _, val = v.partition("=")
        if not k:
            raise InvalidArgument(f"invalid {what} {v!r}: expected KEY=VALUE")
        out[k] = val
    return out


def parse_filters(values: tuple[str, ...], label_negation: bool = True) -> dict[str, list[str]]:
    """`--filter name=value` flags grouped by name.

    Docker spells a negated label filter `label!=x`, which partitions as key `label!`; `label=!x` is accepted
    as the same thing where the engine understands `label!` (volumes, prune, df), and passed through untouched
    where it does not (networks)."""
    out: dict[str, list[str]] = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep or not k:
            raise InvalidArgument(f"bad format of filter (expected name=value): {v}")
        if label_negation and k == "label" and val.startswith("!"):
            k, val = "label!", val[1:]
        out.setdefault(k, []).append(val)
    return out
