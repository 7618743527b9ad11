from apache_beam.metrics.cells import DistributionData, DistributionResult
from apache_beam.metrics.execution import MetricKey, MetricResult
from apache_beam.metrics.metricbase import MetricName

from pipelines.records import read


def _distribution(step: str, name: str, values: list[int]) -> MetricResult:
    data = DistributionResult(DistributionData(sum(values), len(values), min(values), max(values)))
    return MetricResult(MetricKey(step, MetricName("read", name)), data, data)


def test_reading_span_runs_from_the_first_shard_opened_to_the_last_read_over_all_steps():
    metrics = {
        "distributions": [
            _distribution("ReadA", "shard_opened_at_ms", [1_000, 1_500]),
            _distribution("ReadA", "shard_finished_at_ms", [1_400, 2_000]),
            _distribution("ReadB", "shard_opened_at_ms", [1_200]),
            _distribution("ReadB", "shard_finished_at_ms", [3_250]),
            _distribution("Other", "unrelated_ms", [0, 99_999]),
        ]
    }
    assert read.reading_span(metrics) == {"shards": 3, "seconds": 2.25}


def test_reading_span_is_none_without_both_distributions():
    assert read.reading_span({"counters": []}) is None
    only_opened = {"distributions": [_distribution("ReadA", "shard_opened_at_ms", [1_000])]}
    assert read.reading_span(only_opened) is None
