import io

import pytest
import tensorflow as tf

from pipelines.records import tfrecord_io
from pipelines.records.tfrecord_io import Damage, Record


def _frames(payloads):
    return [tfrecord_io.encode_record(p) for p in payloads]


def _read(data: bytes):
    return list(tfrecord_io.iter_frames(io.BytesIO(data)))


def test_encoding_is_readable_by_tensorflow(tmp_path):
    payloads = [b"alpha", b"", b"x" * 100_000]
    path = tmp_path / "a.tfrecord"
    path.write_bytes(b"".join(_frames(payloads)))
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == payloads


def test_reads_what_tensorflow_writes(tmp_path):
    path = str(tmp_path / "b.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for p in (b"one", b"two", b"three"):
            writer.write(p)
    with open(path, "rb") as f:
        items = list(tfrecord_io.iter_frames(f))
    assert [i.data for i in items] == [b"one", b"two", b"three"]
    assert [i.index for i in items] == [0, 1, 2]
    assert items[1].offset == 12 + 3 + 4


def test_bad_data_checksum_skips_only_that_record():
    frames = _frames([b"first", b"second", b"third"])
    damaged = bytearray(frames[1])
    damaged[14] ^= 0xFF  # a byte of the payload
    items = _read(frames[0] + bytes(damaged) + frames[2])
    assert [type(i) for i in items] == [Record, Damage, Record]
    assert items[1].index == 1 and items[1].offset == len(frames[0]) and not items[1].ends_shard
    assert "data checksum" in items[1].reason
    assert items[2].data == b"third" and items[2].index == 2


def test_bad_length_checksum_ends_the_shard_keeping_earlier_records():
    frames = _frames([b"first", b"second", b"third"])
    damaged = bytearray(frames[1])
    damaged[0] ^= 0x01  # the length field
    items = _read(frames[0] + bytes(damaged) + frames[2])
    assert isinstance(items[0], Record) and items[0].data == b"first"
    assert len(items) == 2 and items[1].ends_shard and "length" in items[1].reason
    assert items[1].offset == len(frames[0])


@pytest.mark.parametrize("keep", [3, 12, 12 + 4, 12 + 6 + 2])
def test_truncated_shard_keeps_whole_records(keep):
    frames = _frames([b"whole!", b"cut-off"])
    items = _read(frames[0] + frames[1][:keep])
    assert items[0] == Record(0, 0, b"whole!")
    assert len(items) == 2 and items[1].ends_shard and "truncated" in items[1].reason
    assert items[1].offset == len(frames[0]) and items[1].index == 1


def test_empty_stream_yields_nothing():
    assert _read(b"") == []


def test_frames_are_byte_identical_to_tensorflows_writer(tmp_path):
    path = str(tmp_path / "c.tfrecord")
    payloads = [b"", b"payload", bytes(range(256)) * 7]
    with tf.io.TFRecordWriter(path) as writer:
        for p in payloads:
            writer.write(p)
    with open(path, "rb") as f:
        assert f.read() == b"".join(_frames(payloads))
