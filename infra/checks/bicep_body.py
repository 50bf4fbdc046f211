"""The body of a Bicep resource as checkov hands it over, with any loop or condition unwrapped.

`resource x '...' = [for ...: {...}]` and `= if (...) {...}` arrive as {loop_type/condition, config};
the checks look at what every instance gets, so they read the inner config.
"""

from __future__ import annotations

from typing import Any


def resource_body(conf: dict[str, Any]) -> dict[str, Any]:
    while isinstance(conf.get("config"), dict) and ("loop_type" in conf or "condition" in conf):
        conf = conf["config"]
    return conf


def lookup(conf: dict[str, Any], *path: str) -> Any:
    """conf[path[0]][path[1]]...; None where a step is missing or not an object."""
    node: Any = resource_body(conf)
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
