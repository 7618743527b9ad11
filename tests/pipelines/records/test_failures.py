"""pipelines.records.failures: dead-letter records and their JSON Lines shards."""

import json

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.records import failures
from pipelines.runner import local_runner


def test_a_failure_says_what_where_and_why():
    record = failures.failure(
        "gs://b/train0001.tfrecord", 7, 4096, failures.STAGE_VALIDATE, "zero frames", "abc"
    )
    assert record == {
        "source": "gs://b/train0001.tfrecord",
        "record_index": 7,
        "byte_offset": 4096,
        "stage": "validate",
        "reason": "zero frames",
        "id": "abc",
    }
    # A record that could not be parsed has no id yet.
    assert failures.failure("f", 0, 0, failures.STAGE_PARSE, "cannot parse record")["id"] == ""


def test_the_stages_tell_a_damaged_file_from_an_invalid_or_repeated_record():
    stages = (failures.STAGE_READ, failures.STAGE_PARSE, failures.STAGE_VALIDATE, failures.STAGE_DUPLICATE)
    assert stages == ("read", "parse", "validate", "duplicate")


def _write(records, prefix) -> None:
    pipeline = beam.Pipeline(runner=local_runner(PipelineOptions([])), options=PipelineOptions([]))
    _ = pipeline | beam.Create(records) | failures.WriteJsonLines(prefix)
    pipeline.run().wait_until_finish()


def test_write_json_lines_writes_one_sorted_json_object_per_line_in_named_shards(tmp_path):
    records = [
        failures.failure("a.tfrecord", i, 100 * i, failures.STAGE_READ, f'truncated at byte {i}, "quoted"\n')
        for i in range(5)
    ] + [failures.failure("b.tfrecord", 0, 0, failures.STAGE_VALIDATE, "label 9 outside [0, 8)", "vidéo-1")]
    _write(records, str(tmp_path / "errors" / "failures"))
    shards = sorted((tmp_path / "errors").iterdir())
    assert [p.name for p in shards] == ["failures-00000-of-00001.jsonl"]
    lines = shards[0].read_text().splitlines()
    assert len(lines) == len(records)  # a reason's line break stays inside its JSON string
    assert sorted(lines) == sorted(json.dumps(record, sort_keys=True) for record in records)
    assert json.loads(lines[0]) in records


def test_no_failures_still_write_an_empty_shard(tmp_path):
    _write([], str(tmp_path / "failed"))
    assert [(p.name, p.read_text()) for p in tmp_path.iterdir()] == [("failed-00000-of-00001.jsonl", "")]
