"""The signed-in caller as App Service Authentication ("Easy Auth") hands it to the app: in request
headers that the platform sets, and strips from every request a client sends.

The documented format (learn.microsoft.com/azure/app-service/configure-authentication-user-identities):
`X-MS-CLIENT-PRINCIPAL` is Base64-encoded JSON `{"auth_typ", "claims": [{"typ", "val"}], "name_typ",
"role_typ"}`; `X-MS-CLIENT-PRINCIPAL-ID` the identity provider's id for the caller (Entra ID: the
object id), `-NAME` a readable name (the user principal name), `-IDP` the provider ("aad"). "External
requests aren't allowed to set these headers, so they're present only if App Service sets them" (same
page): so they are read only where sign-in is on, which the platform tells the app with
`WEBSITE_AUTH_ENABLED=True` (the variable Microsoft.Identity.Web's AppServicesAuthenticationInformation
reads). Both sides live here: the app reads the headers (api/callers.py), devhost writes them
(devhost/sign_in.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

PRINCIPAL = "x-ms-client-principal"
PRINCIPAL_ID = "x-ms-client-principal-id"
PRINCIPAL_NAME = "x-ms-client-principal-name"
PRINCIPAL_IDP = "x-ms-client-principal-idp"
# What the platform owns: these principal headers and the provider tokens (X-MS-TOKEN-AAD-ID-TOKEN, ...).
PLATFORM_HEADER_PREFIXES = (PRINCIPAL, "x-ms-token-")
SIGN_IN_ENABLED = "WEBSITE_AUTH_ENABLED"

# Entra ID passes app roles as `roles` claims, while `role_typ` names the long claim URI; both are read.
ROLES_CLAIM = "roles"
ROLE_CLAIM_URI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
NAME_CLAIM = "name"


class PrincipalFormatError(ValueError):
    """Principal headers that are not in App Service's format."""


@dataclass(frozen=True)
class Principal:
    id: str
    name: str
    roles: frozenset[str] = frozenset()
    provider: str = "aad"


def is_platform_header(name: str) -> bool:
    return name.lower().startswith(PLATFORM_HEADER_PREFIXES)


def sign_in_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(SIGN_IN_ENABLED, "").strip().lower() == "true"


def principal_headers(principal: Principal) -> dict[str, str]:
    """The headers App Service sets for a signed-in Entra ID user (devhost sets the same)."""
    claims = [{"typ": OBJECT_ID_CLAIM, "val": principal.id}, {"typ": NAME_CLAIM, "val": principal.name},
              {"typ": "preferred_username", "val": principal.name},
              *({"typ": ROLES_CLAIM, "val": role} for role in sorted(principal.roles))]
    payload = {"auth_typ": principal.provider, "claims": claims, "name_typ": NAME_CLAIM, "role_typ": ROLE_CLAIM_URI}
    encoded = base64.b64encode(json.dumps(payload).encode()).decode()
    return {"X-MS-CLIENT-PRINCIPAL": encoded, "X-MS-CLIENT-PRINCIPAL-ID": principal.id,
            "X-MS-CLIENT-PRINCIPAL-NAME": principal.name, "X-MS-CLIENT-PRINCIPAL-IDP": principal.provider}


def read_principal(headers: Mapping[str, str]) -> Principal | None:
    """The principal in `headers` (names in any case), None when there is none; PrincipalFormatError
    when there is one but it does not decode as the platform writes it."""
    lowered = {name.lower(): value for name, value in headers.items()}
    encoded, caller_id = lowered.get(PRINCIPAL), (lowered.get(PRINCIPAL_ID) or "").strip()
    if not encoded and not caller_id:
        return None
    try:
        payload = json.loads(base64.b64decode(encoded or "", validate=True))
        claims = [(claim["typ"], claim["val"]) for claim in payload["claims"]]
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise PrincipalFormatError(f"X-MS-CLIENT-PRINCIPAL does not decode: {error}") from None
    if not all(isinstance(typ, str) and isinstance(value, str) for typ, value in claims):
        raise PrincipalFormatError("X-MS-CLIENT-PRINCIPAL claims must be strings")
    object_ids = {value for typ, value in claims if typ in (OBJECT_ID_CLAIM, "oid")}
    caller_id = caller_id or next(iter(object_ids), "")
    if not caller_id or (object_ids and caller_id not in object_ids):
        raise PrincipalFormatError("X-MS-CLIENT-PRINCIPAL-ID is missing or names another caller than the claims")
    role_types = {payload.get("role_typ"), ROLES_CLAIM, ROLE_CLAIM_URI}
    name_type = payload.get("name_typ") or NAME_CLAIM
    name = lowered.get(PRINCIPAL_NAME) or next((value for typ, value in claims if typ == name_type), caller_id)
    return Principal(caller_id, name, frozenset(value for typ, value in claims if typ in role_types),
                     lowered.get(PRINCIPAL_IDP) or str(payload.get("auth_typ") or "aad"))
