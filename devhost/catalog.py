"""The app's functions, read from their binding metadata the way the Python worker indexes them.

The worker imports the script, takes its one FunctionApp, and lists each function's trigger and
bindings. devhost supports exactly the kinds this app uses: HTTP, blob, orchestration and activity
triggers, with a Durable client input and the HTTP `$return` output. A function with anything
else is reported and left out, rather than run half-bound.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import azure.functions as func

from . import log

TRIGGERS = {"httpTrigger", "blobTrigger", "orchestrationTrigger", "activityTrigger"}
EXTRA_BINDINGS = {"durableClient", "http"}


class AppLoadError(RuntimeError):
    """The app module cannot be imported or has no single FunctionApp."""


@dataclass(frozen=True)
class Function:
    name: str
    trigger: dict
    bindings: tuple[dict, ...]
    fn: Callable

    @property
    def trigger_param(self) -> str:
        return self.trigger["name"]

    @property
    def client_param(self) -> str | None:
        return next((b["name"] for b in self.bindings if b["type"] == "durableClient"), None)

    def arguments(self, trigger_value: object, client_json: str) -> dict[str, object]:
        """The trigger's value, plus the Durable client binding's JSON where the function has one."""
        client = {self.client_param: client_json} if self.client_param else {}
        return {self.trigger_param: trigger_value, **client}


@dataclass
class Catalog:
    http: list[Function] = field(default_factory=list)
    blobs: list[Function] = field(default_factory=list)
    orchestrators: dict[str, Function] = field(default_factory=dict)
    activities: dict[str, Function] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # function name -> why

    @classmethod
    def load(cls, module_name: str) -> Catalog:
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            raise AppLoadError(f"cannot import the app module {module_name!r}: {type(error).__name__}: {error}") \
                from error
        apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
        if len(apps) != 1:
            raise AppLoadError(f"{module_name} must define exactly one FunctionApp/DFApp; found {len(apps)}")
        return cls.from_app(apps[0])

    @classmethod
    def from_app(cls, app: func.FunctionRegister) -> Catalog:
        catalog = cls()
        for builder in app.get_functions():
            catalog._add(builder)
        return catalog

    def _add(self, builder) -> None:
        name = builder.get_function_name()
        bindings = tuple(json.loads(builder.get_function_json())["bindings"])
        trigger = next((b for b in bindings if b["type"].endswith("Trigger")), None)
        others = {b["type"] for b in bindings if b is not trigger} - EXTRA_BINDINGS
        if trigger is None or trigger["type"] not in TRIGGERS or others:
            kinds = sorted(({trigger["type"]} if trigger and trigger["type"] not in TRIGGERS else set()) | others)
            self.skipped[name] = f"devhost does not support {', '.join(kinds) or 'functions without a trigger'}"
            log.event("function.skipped", function=name, reason=self.skipped[name])
            return
        function = Function(name, trigger, bindings, builder.get_user_function())
        kind = trigger["type"]
        if kind == "httpTrigger":
            self.http.append(function)
        elif kind == "blobTrigger":
            self.blobs.append(function)
        elif kind == "orchestrationTrigger":
            self.orchestrators[trigger.get("orchestration") or name] = function
        else:  # the host names an activity by the binding's `activity`; call_activity(fn) by the function name
            for alias in {trigger.get("activity") or name, name}:
                self.activities[alias] = function

    def names(self) -> list[str]:
        functions = [*self.http, *self.blobs, *self.orchestrators.values(), *self.activities.values()]
        return sorted({function.name for function in functions})
