"""Blob storage against real Azurite: containers, round trips, and memory that does not grow with size."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from restyle.settings import Settings
from restyle.storage import BlobNotFound, service_client


def test_round_trip_copy_metadata_and_listing(store, tmp_path):
    settings = store.settings
    source = tmp_path / "clip.bin"
    source.write_bytes(bytes(range(256)) * 40_000)  # ~10 MB: several 4 MiB blocks
    store.upload_file(settings.input_container, "dir/Ünï clip.mp4", source, metadata={"style": "19"})
    info = store.info(settings.input_container, "dir/Ünï clip.mp4")
    assert info.size == source.stat().st_size and info.metadata == {"style": "19"} and info.etag
    store.copy(settings.input_container, "dir/Ünï clip.mp4", settings.rejected_container, "dir/Ünï clip.mp4")
    back = store.download_file(settings.rejected_container, "dir/Ünï clip.mp4", tmp_path / "back.bin")
    assert back.read_bytes() == source.read_bytes()
    assert store.info(settings.rejected_container, "dir/Ünï clip.mp4").metadata == {"style": "19"}
    assert list(store.list_names(settings.input_container, "dir/")) == ["dir/Ünï clip.mp4"]
    assert store.delete_prefix(settings.input_container, "dir/") == 1
    assert store.delete(settings.input_container, "dir/Ünï clip.mp4") is False


def test_missing_blobs_raise_blob_not_found(store, tmp_path):
    with pytest.raises(BlobNotFound, match=r"nope\.mp4 does not exist"):
        store.info(store.settings.input_container, "nope.mp4")
    with pytest.raises(BlobNotFound):
        store.download_file(store.settings.input_container, "nope.mp4", tmp_path / "x")
    with pytest.raises(BlobNotFound):
        store.read_json(store.settings.work_container, "nope.json")


def test_containers_are_created_once(store):
    store.ensure_containers()  # again: no error
    names = {c.name for c in store.service.list_containers()}
    assert store.settings.output_container in names and store.settings.rejected_container in names


def test_identity_is_used_when_an_account_url_is_set():
    client = service_client(Settings(storage_account_url="https://acct.blob.core.windows.net"))
    assert type(client.credential).__name__ == "DefaultAzureCredential"
    assert client.account_name == "acct"


_MEMORY_PROBE = textwrap.dedent("""
    import json, os, resource, sys
    from pathlib import Path
    from restyle.settings import Settings
    from restyle.storage import BlobStore
    settings = Settings.model_validate_json(sys.argv[1])
    folder = Path(sys.argv[2])
    size = int(sys.argv[3])
    store = BlobStore.from_settings(settings)
    store.ensure_containers()
    source = folder / "big.bin"
    with source.open("wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(os.urandom(1 << 20))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store.upload_file(settings.input_container, "big.bin", source)
    store.copy(settings.input_container, "big.bin", settings.rejected_container, "big.bin")
    store.download_file(settings.rejected_container, "big.bin", folder / "back.bin")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    same = (folder / "back.bin").stat().st_size == size
    print(json.dumps({"grew_mb": (after - before) / 1024, "same": same}))
""")


def test_transfers_stream_in_bounded_memory(settings, tmp_path):
    """200 MB up, copied and down again: the process grows by a few blocks, not by the file."""
    done = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, settings.model_dump_json(), str(tmp_path),
                           str(200 << 20)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout)
    assert figures["same"] and figures["grew_mb"] < 64, figures


def test_a_prefix_is_deleted_in_batches_of_256(store, monkeypatch):
    """A many-models run's work folder held ~40,000 blobs deleted one request each; now one Blob
    Batch request removes up to 256 (Azurite implements the batch API)."""
    from concurrent.futures import ThreadPoolExecutor

    container = store.settings.work_container
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.write_bytes(container, f"job-b/trained/{i:04d}.json", b"{}", "application/json"),
                      range(600)))
    store.write_bytes(container, "job-b.canceled", b"{}", "application/json")  # outside the prefix: stays
    batches = []
    real = store._delete_batch
    monkeypatch.setattr(store, "_delete_batch", lambda client, names: batches.append(len(names)) or real(client, names))
    assert store.delete_prefix(container, "job-b/") == 600
    assert batches == [256, 256, 88]
    assert list(store.list_names(container, "job-b")) == ["job-b.canceled"]
