"""Who is calling the HTTP API: a person signed in through App Service Authentication, the machine
key, or nobody (401), and what each may see.

The routes are at auth level ANONYMOUS and this module decides instead of the Functions host: the
host's key check admits only key holders (azure-functions-host, Security/Authorization/AuthUtility.cs:
an Easy Auth identity carries no auth-level claim, so a signed-in browser without a key is refused;
azure-functions-host issue #11394), and a browser must never carry a key. Machine clients keep sending
their key in `x-functions-key` (or `?code=`); the app accepts a key whose SHA-256 is listed in the
`api_key_sha256` setting.

A person owns the jobs of their uploads; the key owns the jobs it starts and uploads that came without
an upload ticket; an operator (the Entra app role `Restyle.Operator` in the principal's roles) may act
for everyone. Another owner's job answers 404, as one that does not exist.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from restyle.principal import PrincipalFormatError, read_principal, sign_in_enabled
from restyle.settings import Settings

from .errors import ApiError

OPERATOR_ROLE = "Restyle.Operator"
KEY_OWNER = "key"
KEY_HEADER = "x-functions-key"
KEY_PARAM = "code"


@dataclass(frozen=True)
class Caller:
    id: str
    name: str
    roles: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_key(self) -> bool:
        return self.id == KEY_OWNER

    @property
    def operator(self) -> bool:
        return OPERATOR_ROLE in self.roles

    @property
    def limited(self) -> bool:
        """Quotas apply to signed-in people; operators and the machine key are not limited."""
        return not (self.is_key or self.operator)

    def may_act_for(self, owner_id: str) -> bool:
        return self.operator or owner_id == self.id

    def as_owner(self) -> dict[str, str]:
        """How a job records who owns it (in its orchestration input)."""
        return {"id": self.id, "name": self.name}

    def describe(self) -> dict:
        return {"id": self.id, "name": self.name, "kind": "key" if self.is_key else "user",
                "roles": sorted(self.roles), "operator": self.operator}


KEY_CALLER = Caller(KEY_OWNER, "machine key")
NOT_SIGNED_IN = "sign in (open the jobs page) or send the machine key in the x-functions-key header"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def identify(headers: Mapping[str, str], params: Mapping[str, str], settings: Settings,
             environ: Mapping[str, str] = os.environ) -> Caller:
    """The caller of one request; ApiError 401 when it is nobody the settings admit.

    Principal headers count only where the platform's sign-in is on (WEBSITE_AUTH_ENABLED): there it
    has removed any a client sent, elsewhere they are the client's own words and are ignored."""
    if sign_in_enabled(environ):
        try:
            principal = read_principal(headers)
        except PrincipalFormatError as error:
            raise ApiError(401, "invalid_principal", f"{error}; {NOT_SIGNED_IN}") from None
        if principal is not None:
            return Caller(principal.id, principal.name, principal.roles)
    if settings.auth == "open":  # as under `func start`: no keys are checked
        return KEY_CALLER
    lowered = {name.lower(): value for name, value in headers.items()}
    key = lowered.get(KEY_HEADER) or params.get(KEY_PARAM)
    if key and any(hmac.compare_digest(key_hash(key), known) for known in settings.api_key_hashes):
        return KEY_CALLER
    if key:
        raise ApiError(401, "invalid_key", "the key in x-functions-key is not one this app accepts")
    raise ApiError(401, "not_signed_in", NOT_SIGNED_IN)
