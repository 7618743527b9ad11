"""The dataset readers agree with each other and with the rows the job wrote."""

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import preprocess
from pipelines.synth import SynthConfig, generate
from schemas import features as F
from schemas.preprocessed import layout_from_arrow_schema
from tests.schemas.test_preprocessed import _legacy_record_batch
from trainer import inputs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("reader")
    generate(
        str(root / "raw"),
        SynthConfig(videos=30, shards=2, classes=12, min_frames=3, max_frames=60, seed=11),
        progress=False,
    )
    preprocess.run(
        [
            "--input",
            f"{root}/raw/train*.tfrecord",
            "--output",
            str(root / "ds"),
            "--num-classes",
            "12",
            "--format",
            "parquet,tfrecord",
            "--view",
            "every_n:4",
            "--teacher-view",
            "--num-shards",
            "1",
        ]
    )
    return root / "ds"


def test_parquet_and_tfrecord_readers_give_the_same_batches(dataset):
    parquet = list(inputs.parquet_batches(str(dataset), batch_size=8))
    tfrecord = list(inputs.tfrecord_dataset(str(dataset), batch_size=8))
    assert len(parquet) == len(tfrecord) == 4
    by_id = {}
    for batch in parquet:
        for i, video_id in enumerate(batch[F.ID]):
            by_id[video_id] = {k: v[i] for k, v in batch.items()}
    for batch in tfrecord:
        for i, video_id in enumerate(batch[F.ID].numpy()):
            expected = by_id[video_id.decode()]
            for name in (F.RGB, F.AUDIO, F.full_view_column(F.RGB)):
                length = int(batch[name + inputs.LENGTH_SUFFIX][i])
                assert length == expected[name + inputs.LENGTH_SUFFIX]
                assert np.array_equal(batch[name][i].numpy()[:length], expected[name][:length])
            assert batch[F.LABELS][i].numpy().tolist() == expected[F.LABELS].tolist()


def test_a_dataset_written_in_the_old_frames_encoding_gives_the_same_batches(dataset, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(dataset, old)
    for path in (old / "parquet").glob("*.parquet"):
        table = pq.read_table(path)
        layout = layout_from_arrow_schema(table.schema)
        legacy = pa.Table.from_batches([_legacy_record_batch(layout, layout.rows_from_table(table))])
        assert pa.types.is_list(legacy.schema.field(F.RGB).type)
        pq.write_table(legacy, path)
    expected = list(inputs.parquet_batches(str(dataset), batch_size=8))
    got = list(inputs.parquet_batches(str(old), batch_size=8))
    assert len(got) == len(expected) == 4
    for got_batch, expected_batch in zip(got, expected, strict=True):
        assert got_batch[F.ID].tolist() == expected_batch[F.ID].tolist()
        for name in (F.RGB, F.AUDIO, F.full_view_column(F.RGB), F.full_view_column(F.AUDIO)):
            assert np.array_equal(got_batch[name], expected_batch[name]), name
            assert np.array_equal(
                got_batch[name + inputs.LENGTH_SUFFIX], expected_batch[name + inputs.LENGTH_SUFFIX]
            )


def test_padding_is_zero_and_lengths_match_the_view(dataset):
    (first, *_) = inputs.parquet_batches(
        str(dataset), batch_size=30, columns=[F.ID, F.RGB, F.NUM_FRAMES], pad_to=20
    )
    assert set(first) == {F.ID, F.RGB, F.RGB + inputs.LENGTH_SUFFIX, F.NUM_FRAMES}
    assert first[F.RGB].shape == (30, 20, 1024) and first[F.RGB].dtype == np.float16
    for frames, length, n in zip(
        first[F.RGB], first[F.RGB + inputs.LENGTH_SUFFIX], first[F.NUM_FRAMES], strict=True
    ):
        assert length == min(len(range(0, n, 4)), 20)
        assert not frames[length:].any() and frames[:length].any()


def test_readers_refuse_what_is_not_there(dataset, tmp_path):
    with pytest.raises(ValueError, match="not a fewframes dataset"):
        next(inputs.parquet_batches(str(tmp_path), 4))
    with pytest.raises(ValueError, match="no column"):
        next(inputs.parquet_batches(str(dataset), 4, columns=[F.MEAN_RGB]))
