"""Valet keys (api/valet.py) and the page's tickets (api/tickets.py) against real Azurite.

Both kinds of SAS are checked by what storage lets them do, not by their text: the create-only key puts
exactly its one blob once and nothing else (no read, no other name, no overwrite, no metadata, lease or
block list on the blob it made, whatever headers the client sends); the read key reads and cannot write.

The user-delegation path (Azure's) runs against Azurite too: Azurite issues user-delegation keys
to OAuth callers over HTTPS, so it is started here with `--oauth basic` and a self-signed
certificate, and Microsoft Entra (the one part of Azure it cannot stand in for) is replaced by a
credential that mints the unsigned token Azurite's basic OAuth level accepts.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import time
import uuid

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, BlobSasPermissions, BlobServiceClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.callers import KEY_CALLER, Caller
from api.errors import ApiError
from api.tickets import download_links, upload_ticket
from api.upload_records import UploadRecord, claim_name, pending_tickets, upload_record
from api.valet import create_only_permission, read_permission, valet_key
from restyle.storage import BlobStore
from tools.azurite import Azurite

ALICE, BOB = Caller("alice-id", "alice@example.com"), Caller("bob-id", "bob@example.com")
BLOCK = base64.b64encode(b"block-0").decode()
BLOCK_LIST = f'<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>{BLOCK}</Latest></BlockList>'


def put(url: str, data: bytes, verify: bool | str = True) -> None:
    BlobClient.from_blob_url(url, connection_verify=verify).upload_blob(data, overwrite=True)


def other_blob(url: str, name: str) -> str:
    """The same SAS on another blob's URL."""
    path, query = url.split("?", 1)
    return f"{path.rsplit('/', 1)[0]}/{name}?{query}"


def assert_create_only(url: str, verify: bool | str = True) -> None:
    put(url, b"first", verify=verify)
    with pytest.raises(HttpResponseError) as again:
        put(url, b"second", verify=verify)
    assert (again.value.status_code, again.value.error_code) == (403, "AuthorizationPermissionMismatch")
    with pytest.raises(HttpResponseError) as refused:
        BlobClient.from_blob_url(url, connection_verify=verify).download_blob().readall()
    assert refused.value.status_code == 403
    with pytest.raises(HttpResponseError) as elsewhere:
        put(other_blob(url, "someone-else.mp4"), b"x", verify=verify)
    assert elsewhere.value.status_code == 403


def test_service_sas_on_azurite_creates_its_one_blob_only(store, settings):
    key = valet_key(store, settings.input_container, "clip.mp4", create_only_permission(), 5)
    assert_create_only(key.url)
    assert store.read_bytes(settings.input_container, "clip.mp4") == b"first"
    assert 4 * 60 < (key.expires - datetime.datetime.now(datetime.UTC)).total_seconds() <= 5 * 60

    reader = valet_key(store, settings.input_container, "clip.mp4", read_permission(), 5)
    assert BlobClient.from_blob_url(reader.url).download_blob().readall() == b"first"
    with pytest.raises(HttpResponseError) as refused:
        put(reader.url, b"changed")
    assert refused.value.status_code == 403


def storage(method: str, url: str, query: str = "", data: bytes = b"", **headers: str) -> int:
    """One raw Blob REST call with the SAS (no SDK between: exactly what a hostile client can send)."""
    sep = "&" if "?" in url else "?"
    return requests.request(method, f"{url}{sep}{query}" if query else url, data=data, timeout=30,
                            headers={"x-ms-version": "2023-11-03", **headers}).status_code


def test_what_a_create_only_sas_refuses_on_azurite(store, settings):
    """Azurite checks SAS permissions per operation, as storage does: with create alone the first Put
    Blob succeeds and every way to change that blob afterwards is refused by the service itself."""
    container = settings.input_container
    url = valet_key(store, container, "clip.mp4", create_only_permission(), 5).url
    assert storage("PUT", url, data=b"first", **{"x-ms-blob-type": "BlockBlob", "x-ms-meta-style": "19"}) == 201
    etag = store.info(container, "clip.mp4").etag
    attempts = {
        "overwrite": storage("PUT", url, data=b"second", **{"x-ms-blob-type": "BlockBlob"}),
        "overwrite, If-None-Match: *": storage("PUT", url, data=b"second", **{"x-ms-blob-type": "BlockBlob",
                                                                              "If-None-Match": "*"}),
        "set metadata": storage("PUT", url, "comp=metadata", **{"x-ms-meta-style": "3"}),
        "put a block": storage("PUT", url, f"comp=block&blockid={BLOCK}", data=b"third"),
        "commit a block list": storage("PUT", url, "comp=blocklist", data=BLOCK_LIST.encode()),
        "lease": storage("PUT", url, "comp=lease", **{"x-ms-lease-action": "acquire", "x-ms-lease-duration": "-1"}),
        "delete": storage("DELETE", url),
        "read": storage("GET", url),
    }
    assert attempts == dict.fromkeys(attempts, 403)
    assert store.read_bytes(container, "clip.mp4") == b"first"
    assert store.info(container, "clip.mp4").metadata == {"style": "19"}
    # create also allows a snapshot ("snapshot a blob", the permission's documented meaning): a read-only
    # copy beside the blob, which changes neither the blob nor its ETag, so it starts no job
    assert storage("PUT", url, "comp=snapshot") == 201
    assert store.info(container, "clip.mp4").etag == etag
    new = valet_key(store, container, "blocks.mp4", create_only_permission(), 5).url  # Azurite: blocks need write
    assert (storage("PUT", new, f"comp=block&blockid={BLOCK}", data=b"x"),
            storage("PUT", new, "comp=blocklist", data=BLOCK_LIST.encode())) == (403, 403)

    writer = valet_key(store, container, "clip.mp4", BlobSasPermissions(create=True, write=True), 5).url
    assert storage("PUT", writer, data=b"replaced", **{"x-ms-blob-type": "BlockBlob"}) == 201  # what write added
    assert store.read_bytes(container, "clip.mp4") == b"replaced"


def test_an_upload_ticket_carries_style_options_and_size_and_records_its_owner(store, settings):
    ticket = upload_ticket(store, {"name": "holiday clip.mp4", "size": 5, "style": "3:0.5,12:0.5",
                                   "options": {"scale": "0.5", "compile": False}}, ALICE)
    assert ticket["blob"] == "holiday clip.mp4" and ticket["method"] == "PUT" and ticket["max_bytes"] == 5
    headers = ticket["headers"]
    assert headers == {"x-ms-blob-type": "BlockBlob", "x-ms-meta-style": "3:0.5,12:0.5",
                       "x-ms-meta-scale": "0.5", "x-ms-meta-compile": "false"}
    record = upload_record(store, "holiday clip.mp4")
    assert (record.owner, record.max_bytes) == (ALICE.as_owner(), 5)
    assert pending_tickets(store, ALICE.id, datetime.datetime.now(datetime.UTC)) == 1
    metadata = {name.removeprefix("x-ms-meta-"): value for name, value in headers.items() if "meta" in name}
    BlobClient.from_blob_url(ticket["url"]).upload_blob(b"video", metadata=metadata)
    assert store.info(settings.input_container, "holiday clip.mp4").metadata == metadata  # what the trigger reads
    with pytest.raises(HttpResponseError) as again:  # the same ticket, used twice: storage keeps the first upload
        BlobClient.from_blob_url(ticket["url"]).upload_blob(b"other", overwrite=True)
    assert again.value.status_code == 403
    with pytest.raises(ApiError) as taken:
        upload_ticket(store, {"name": "holiday clip.mp4", "size": 5}, BOB)
    assert (taken.value.status, taken.value.code) == (409, "name_taken")


def test_a_name_belongs_to_one_ticket_holder_until_the_ticket_expires(store):
    now = datetime.datetime.now(datetime.UTC)
    later = now + datetime.timedelta(minutes=15)
    assert claim_name(store, "clip.mp4", UploadRecord(ALICE.as_owner(), 10, later), now)
    assert not claim_name(store, "clip.mp4", UploadRecord(BOB.as_owner(), 10, later), now)  # reserved for alice
    assert claim_name(store, "clip.mp4", UploadRecord(ALICE.as_owner(), 20, later), now)  # alice may ask again
    assert claim_name(store, "clip.mp4", UploadRecord(BOB.as_owner(), 30, later), later)  # alice's ticket expired
    assert upload_record(store, "clip.mp4").owner == BOB.as_owner()
    assert pending_tickets(store, ALICE.id, later) == 0 and pending_tickets(store, BOB.id, now) == 1
    with pytest.raises(ApiError) as reserved:
        upload_ticket(store, {"name": "clip.mp4", "size": 5}, ALICE)
    assert (reserved.value.status, reserved.value.code) == (409, "name_taken")


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"name": "../escape.mp4", "size": 1}, 400, "invalid_name"),
    ({"name": "a.mp4", "size": 1, "style": "30"}, 400, "invalid_style"),
    ({"name": "a.mp4", "size": 1, "style": "monet.jpg"}, 404, "invalid_style"),
    ({"name": "a.mp4", "size": 1, "options": {"speed": "fast"}}, 400, "invalid_options"),
    ({"name": "a.mp4", "size": 1, "options": {"scale": [1]}}, 400, "invalid_options"),
    ({"name": "a.mp4", "size": 1, "extra": 1}, 400, "invalid_body"),
    ({"name": "a.mp4"}, 400, "invalid_size"),
    ({"name": "a.mp4", "size": 0}, 400, "invalid_size"),
    ({"name": "a.mp4", "size": "10"}, 400, "invalid_size"),
    ({"name": "a.mp4", "size": True}, 400, "invalid_size"),
    ({"name": "a.mp4", "size": 5000 * 1024 * 1024 + 1}, 413, "upload_too_large"),
    (["a.mp4"], 400, "invalid_body"),
])
def test_a_bad_upload_request_is_refused_before_any_key_is_issued(store, body, status, code):
    with pytest.raises(ApiError) as refused:
        upload_ticket(store, body, ALICE)
    assert (refused.value.status, refused.value.code) == (status, code)
    assert upload_record(store, "a.mp4") is None


def test_download_links_only_for_a_completed_job(store, settings):
    store.write_bytes(settings.output_container, "a.styled.mp4", b"video", "video/mp4")
    store.write_bytes(settings.output_container, "a.styled.preview.jpg", b"jpeg", "image/jpeg")
    out = settings.output_container
    job = {"id": "j1", "status": "Completed", "owner": KEY_CALLER.as_owner(),
           "output": {"output_blob": f"{out}/a.styled.mp4", "preview_blob": f"{out}/a.styled.preview.jpg"}}
    links = download_links(store, job, KEY_CALLER)
    assert BlobClient.from_blob_url(links["output"]).download_blob().readall() == b"video"
    assert BlobClient.from_blob_url(links["preview"]).download_blob().readall() == b"jpeg"
    with pytest.raises(ApiError) as early:
        download_links(store, {"id": "j2", "status": "Running"}, KEY_CALLER)
    assert early.value.status == 409


# --- the user-delegation SAS (Azure's path), against Azurite with OAuth over HTTPS ---------------------

class FakeEntra:
    """Stands in for Microsoft Entra ID: a token with the claims Azurite's basic OAuth level checks."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: object) -> AccessToken:
        self.scopes.append(scopes)
        now = int(time.time())
        claims = {"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{uuid.uuid4()}/",
                  "oid": str(uuid.uuid4()), "tid": str(uuid.uuid4()), "iat": now, "nbf": now - 60, "exp": now + 3600}
        parts = [{"alg": "none", "typ": "JWT"}, claims]
        token = ".".join(base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=").decode() for p in parts) + "."
        return AccessToken(token, now + 3600)


def self_signed_certificate(folder) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def oauth_azurite(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    azurite = Azurite(tmp_path / "data", extra_args=("--oauth", "basic", "--cert", cert, "--key", key)).start()
    yield f"https://127.0.0.1:{azurite.port}/devstoreaccount1", cert
    azurite.stop(grace=1)


def test_the_identity_path_issues_a_user_delegation_sas_that_creates_its_one_blob_only(oauth_azurite, settings):
    url, cert = oauth_azurite
    entra = FakeEntra()
    service = BlobServiceClient(url, credential=entra, connection_verify=cert)
    azure_settings = settings.model_copy(update={"storage_account_url": url, "storage_connection_string": None})
    store = BlobStore(service, azure_settings)
    assert not store.settings.uses_connection_string  # so valet_key takes the identity path
    store.ensure_containers()

    key = valet_key(store, azure_settings.input_container, "clip.mp4", create_only_permission(), 10)
    query = dict(part.split("=", 1) for part in key.url.split("?", 1)[1].split("&"))
    assert {"skoid", "sktid", "skt", "ske", "sks", "skv"} <= set(query)  # signed with a delegation key
    assert (query["sp"], query["sr"], query["spr"]) == ("c", "b", "https")
    assert entra.scopes and all(scope == ("https://storage.azure.com/.default",) for scope in entra.scopes)
    assert_create_only(key.url, verify=cert)
    assert store.read_bytes(azure_settings.input_container, "clip.mp4") == b"first"
    with pytest.raises(HttpResponseError) as forged:  # Azurite checks the signature against the delegation key
        put(key.url.replace("skoid=", "skoid=0"), b"forged", verify=cert)
    assert forged.value.status_code == 403
