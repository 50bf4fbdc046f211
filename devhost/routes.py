"""ASP.NET-style route templates, as the Functions host matches HTTP trigger routes.

`jobs/{instance_id}`, optional `{id?}`, constrained `{n:int}`, catch-all `{*rest}` and segments that
mix text and parameters (`{name}.{ext}`). Literals match case-insensitively, values are URL-decoded,
a trailing slash is ignored, and when several templates match, the most specific wins (literal
segments before constrained parameters before plain, optional and catch-all ones).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

CONSTRAINTS = {"int": r"-?\d+", "long": r"-?\d+", "bool": r"(?i:true|false)", "alpha": r"[A-Za-z]+",
               "guid": r"[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}", "double": r"-?\d+(?:\.\d+)?",
               "float": r"-?\d+(?:\.\d+)?"}
PARAMETER = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?(\?)?\}")


class RouteTemplateError(ValueError):
    """A route template devhost cannot read (or that the real host would reject)."""


@dataclass(frozen=True)
class Route:
    template: str
    pattern: re.Pattern = field(repr=False)
    rank: tuple[int, ...] = field(repr=False)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path.strip("/"))
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items() if value is not None}


def compile_route(template: str) -> Route:
    segments = template.strip("/").split("/") if template.strip("/") else []
    parts, rank = [], []
    for position, segment in enumerate(segments):
        slash = "/" if position else ""
        whole = PARAMETER.fullmatch(segment)
        if whole:
            value, weight = _parameter(whole, template, last=position == len(segments) - 1)
            parts.append(f"(?:{slash}{value})?" if weight >= 4 else slash + value)
        else:
            parts.append(slash + _complex(segment, template))
            weight = 1 if "{" in segment else 0
        rank.append(weight)
    try:
        pattern = re.compile("".join(parts), re.IGNORECASE)
    except re.error as error:
        raise RouteTemplateError(f"route template {template!r}: {error}") from None
    return Route(template, pattern, tuple(rank))


def _parameter(found: re.Match, template: str, last: bool) -> tuple[str, int]:
    """A whole-segment parameter's regex and its rank (2 constrained, 3 plain, 4 optional, 5 catch-all)."""
    catch_all, name, constraint, optional = found.groups()
    if catch_all and not last:
        raise RouteTemplateError(f"route template {template!r}: a catch-all parameter must be the last segment")
    if constraint and constraint not in CONSTRAINTS:
        raise RouteTemplateError(f"route template {template!r}: constraint {constraint!r} is not one devhost "
                                 f"knows ({', '.join(sorted(CONSTRAINTS))})")
    if catch_all:
        return f"(?P<{name}>.*)", 5
    value = f"(?P<{name}>{CONSTRAINTS[constraint] if constraint else '[^/]+'})"
    return value, 4 if optional else 2 if constraint else 3


def _complex(segment: str, template: str) -> str:
    """A literal segment, or one mixing text and parameters (`{name}.{ext}`)."""
    if "{" in PARAMETER.sub("", segment) or "}" in PARAMETER.sub("", segment):
        raise RouteTemplateError(f"route template {template!r}: unbalanced braces in {segment!r}")
    pieces, cursor = [], 0
    for found in PARAMETER.finditer(segment):
        catch_all, name, constraint, optional = found.groups()
        if catch_all or optional:
            raise RouteTemplateError(f"route template {template!r}: {found.group()} must be a whole segment")
        value = CONSTRAINTS.get(constraint or "", "[^/]+?")
        pieces += [re.escape(segment[cursor:found.start()]), f"(?P<{name}>{value})"]
        cursor = found.end()
    return "".join(pieces) + re.escape(segment[cursor:])


@dataclass
class RouteTable:
    """Templates with their payloads; `match` returns the most specific one for a path and method."""

    entries: list[tuple[Route, frozenset[str] | None, object]] = field(default_factory=list)

    def add(self, template: str, methods: set[str] | None, target: object) -> None:
        self.entries.append((compile_route(template), frozenset(m.upper() for m in methods) if methods else None,
                             target))
        self.entries.sort(key=lambda entry: entry[0].rank)

    def match(self, path: str, method: str) -> tuple[object, dict[str, str]] | None:
        for route, methods, target in self.entries:
            if methods is not None and method.upper() not in methods:
                continue
            values = route.match(path)
            if values is not None:
                return target, values
        return None
