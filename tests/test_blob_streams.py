"""The streamed file layer on real Azurite: ranged reads pinned to an ETag, block-staged writes that a
muxer may patch, and faststart by moving the MP4 index on commit (including 64-bit offset tables)."""

from __future__ import annotations

import struct

import av
import pytest

from activities.media.mp4_boxes import (
    _boxes,
    _find,
    add_sample_entry_boxes,
    hdr10_boxes,
    media_data_ranges,
    move_index_to_front,
)
from restyle.blob_reader import BlobReader
from restyle.blob_writer import BlobWriter, UnpatchableWrite
from restyle.storage import SourceChanged


def test_reads_are_ranged_counted_and_pinned(store):
    data = bytes(range(256)) * 40_000  # ~10 MB
    container = store.settings.input_container
    store.write_bytes(container, "data.bin", data, "application/octet-stream")
    etag = store.info(container, "data.bin").etag
    store.traffic.reset()
    reader = BlobReader(store, container, "data.bin", etag, zeros=[(1000, 2000)])
    reader.seek(5_000_000)
    assert reader.read(10) == data[5_000_000:5_000_010]
    assert store.traffic.bytes_down < 100_000  # one small range, not the blob
    reader.seek(990)
    assert reader.read(20) == data[990:1000] + bytes(10)  # the zero range is served, not fetched
    store.write_bytes(container, "data.bin", b"replaced", "application/octet-stream")
    reader.seek(8_000_000)
    with pytest.raises(SourceChanged, match="was replaced after the job started"):
        reader.read(10)


def test_a_writer_lets_the_muxer_patch_its_head_and_refuses_rewriting_uploaded_bytes(store):
    container = store.settings.output_container
    writer = BlobWriter(store, container, "out.bin", head_bytes=1024)
    writer.write(b"h" * 1000)
    writer.write(b"b" * (5 * 2**20))  # past the head: staged in blocks
    writer.seek(10)
    writer.write(b"PATCH")  # inside the head: fine
    with pytest.raises(UnpatchableWrite):
        writer.seek(4096)
        writer.write(b"x")
    writer.seek(0, 2)
    writer.write(b"TRAILER")
    assert not store.exists(container, "out.bin")  # nothing visible before the commit
    size = writer.finish("application/octet-stream")
    blob = store.read_bytes(container, "out.bin")
    assert size == len(blob) == 1000 + 5 * 2**20 + 7
    assert blob[10:15] == b"PATCH" and blob.endswith(b"TRAILER")


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", len(payload) + 8, kind) + payload


def _moov_with_offsets(offsets: list[int]) -> bytes:
    mvhd = box(b"mvhd", bytes(12) + struct.pack(">I", 1000) + bytes(80))
    stco = box(b"stco", bytes(4) + struct.pack(f">I{len(offsets)}I", len(offsets), *offsets))
    trak = box(b"trak", box(b"mdia", box(b"minf", box(b"stbl", stco))))
    return box(b"moov", mvhd + trak)


def test_moving_the_index_to_the_front_shifts_every_chunk_offset():
    head = struct.pack(">I4s", 16, b"ftyp") + b"isom" + bytes(4) + struct.pack(">I4s", 1000, b"mdat")
    moov = _moov_with_offsets([24, 500])
    moved = move_index_to_front(head, moov)
    assert moved[4:8] == b"ftyp" and moved[20:24] == b"moov"
    table = _find(next(p for _, p in _boxes(moved[16:])), b"trak", b"mdia", b"minf", b"stbl", b"stco")
    assert struct.unpack(">2I", table[8:16]) == (24 + len(moov), 500 + len(moov))


def test_offsets_that_would_pass_4_gib_widen_to_64_bit_tables():
    head = struct.pack(">I4s", 16, b"ftyp") + b"isom" + bytes(4)
    near_limit = 2**32 - 100
    moved = move_index_to_front(head, _moov_with_offsets([24, near_limit]))
    stbl = _find(next(p for _, p in _boxes(moved[16:])), b"trak", b"mdia", b"minf", b"stbl")
    assert _find(stbl, b"stco") is None
    table = _find(stbl, b"co64")
    moov_size = struct.unpack(">I", moved[16:20])[0]
    assert struct.unpack(">2Q", table[8:24]) == (24 + moov_size, near_limit + moov_size)


def test_hdr10_boxes_go_into_the_video_sample_entry_and_the_offsets_still_add_up():
    entry = box(b"hvc1", bytes(78) + box(b"hvcC", b"config"))
    stsd = box(b"stsd", bytes(4) + struct.pack(">I", 1) + entry)
    stco = box(b"stco", bytes(4) + struct.pack(">3I", 2, 24, 500))
    moov = box(b"moov", box(b"trak", box(b"mdia", box(b"minf", box(b"stbl", stsd + stco)))))
    head = struct.pack(">I4s", 16, b"ftyp") + b"isom" + bytes(4) + struct.pack(">I4s", 1000, b"mdat")
    hdr = hdr10_boxes("G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)", "1000,400")
    moved = move_index_to_front(head, moov, entry_boxes={0: hdr})
    new_moov = next(p for _, p in _boxes(moved[16:]))
    stbl = _find(new_moov, b"trak", b"mdia", b"minf", b"stbl")
    hvc1 = _find(_find(stbl, b"stsd")[8:], b"hvc1")
    assert [kind for kind, _ in _boxes(hvc1[78:])] == [b"hvcC", b"mdcv", b"clli"]
    assert struct.unpack(">8H2I", _find(hvc1[78:], b"mdcv")) == (13250, 34500, 7500, 3000, 34000, 16000, 15635,
                                                                  16450, 10000000, 1)
    assert struct.unpack(">2H", _find(hvc1[78:], b"clli")) == (1000, 400)
    moov_size = len(moov) + len(hdr)
    assert struct.unpack(">2I", _find(stbl, b"stco")[8:16]) == (24 + moov_size, 500 + moov_size)
    again = add_sample_entry_boxes(new_moov, 0, hdr)  # an entry that has them already is left alone
    assert again == new_moov
    with pytest.raises(ValueError, match="not a mastering display"):
        hdr10_boxes("G(1,2)B(3,4)", None)


def test_probe_finds_the_media_data_of_an_mp4(bunny):
    data = bunny.read_bytes()
    ranges = media_data_ranges(len(data), lambda offset, length: data[offset:offset + length])
    with av.open(str(bunny)) as container:
        positions = [entry.pos for entry in container.streams.video[0].index_entries]
    assert all(any(start <= pos < end for start, end in ranges) for pos in positions)
