"""Beam's DaskRunner, a second engine beside the FnApiRunner, on a local dask.distributed
cluster (a scheduler and two worker processes, shared by the module).

What it shows: which of the constructs our jobs use the DaskRunner of Beam 2.77 gets
wrong (each a minimal reproduction, marked as the runner's known limitation, strict so
that a fixed runner turns it into a failure to act on), and what our jobs do about the
runner's missing metrics. See the README's "Running on Beam runners".
"""

import os
import pathlib

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import preprocess, runner
from pipelines.datasets import manifest
from pipelines.records import tfrecord_io
from pipelines.synth import SynthConfig, generate
from tests.conftest import REPO_ROOT

distributed = pytest.importorskip("distributed")

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"

WAIT_MS = 60_000  # every wait on the cluster is bounded
_MANIFEST_COUNTS = (
    "records_read", "records_written", "records_failed", "failures_by_stage", "balanced", "videos",
    "frames_in_records", "frames_kept", "label_frequencies",
)  # fmt: skip


@pytest.fixture(scope="module")
def dask_cluster():
    """A scheduler and two single-threaded worker processes on localhost. The workers get
    this checkout first on their PYTHONPATH, so they unpickle `pipelines` and `tests` code
    from the same files as this process (not from an installed copy)."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), saved]))
    try:
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, timeout=60
        )
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    try:
        yield cluster.scheduler_address
    finally:
        # The DaskRunner opens a client for each run and never closes it; closed here,
        # before the cluster, so none of them keeps trying to reconnect.
        for _ in range(100):
            try:
                distributed.default_client().close(timeout=10)
            except ValueError:  # no client left
                break
        cluster.close(timeout=30)


def _dask_args(address: str) -> list[str]:
    return ["--runner", DASK_RUNNER, "--dask_client_address", address, "--dask_connection_timeout", "30"]


def _dask_options(address: str) -> PipelineOptions:
    return PipelineOptions(_dask_args(address))


class _TouchFile(beam.DoFn):
    """Records that an element reached this step as an empty file `<directory>/<tag>-<element>`:
    idempotent, so a runner that computes a step twice leaves the same files."""

    def __init__(self, directory: str, tag: str):
        self._directory, self._tag = directory, tag

    def process(self, element):
        pathlib.Path(self._directory, f"{self._tag}-{element}").touch()
        yield element


class _SplitOddFromEven(beam.DoFn):
    def process(self, n):
        if n % 2:
            yield beam.pvalue.TaggedOutput("odd", n)
        else:
            yield n


def _known_limitation(reason: str, **xfail_kwargs):
    """A test of what the DaskRunner gets wrong in Beam 2.77: it must fail (strict), so a Beam
    that fixes the limitation makes it pass and shows up."""
    return pytest.mark.xfail(
        strict=True, reason=f"DaskRunner known limitation (Beam 2.77): {reason}", **xfail_kwargs
    )


def _touched(directory) -> set[str]:
    return {p.name for p in pathlib.Path(directory).iterdir()}


def test_a_full_class_path_runner_option_builds_that_runner(dask_cluster):
    pipeline = runner.create_pipeline(_dask_options(dask_cluster))
    assert type(pipeline.runner).__module__ + "." + type(pipeline.runner).__name__ == DASK_RUNNER


@_known_limitation(
    "a ParDo's tagged outputs all reach the consumers "
    "of its main output (and of each tagged output): the translation keeps one bag per transform",
)
def test_dask_runner_keeps_a_pardos_tagged_outputs_apart(dask_cluster, tmp_path):
    pipeline = beam.Pipeline(options=_dask_options(dask_cluster))
    numbers = pipeline | beam.Create([1, 2, 3, 4])
    split = numbers | beam.ParDo(_SplitOddFromEven()).with_outputs("odd", main="even")
    _ = split.even | "TouchEven" >> beam.ParDo(_TouchFile(str(tmp_path), "even"))
    pipeline.run().wait_until_finish(duration=WAIT_MS)
    assert _touched(tmp_path) == {"even-2", "even-4"}


@_known_limitation(
    "only the last applied transform's bag is computed, "
    "so a branch that nothing downstream depends on never runs",
)
def test_dask_runner_runs_every_branch_of_a_pipeline(dask_cluster, tmp_path):
    pipeline = beam.Pipeline(options=_dask_options(dask_cluster))
    _ = pipeline | "A" >> beam.Create(["a"]) | "TouchA" >> beam.ParDo(_TouchFile(str(tmp_path), "branch"))
    _ = pipeline | "B" >> beam.Create(["b"]) | "TouchB" >> beam.ParDo(_TouchFile(str(tmp_path), "branch"))
    pipeline.run().wait_until_finish(duration=WAIT_MS)
    assert _touched(tmp_path) == {"branch-a", "branch-b"}


@_known_limitation(
    "Beam's file sinks write empty files; the sink's "
    "side inputs (its temp directory, the write results) are recomputed inside each task that reads them, "
    "so the lines are written twice into temp directories that the finalize step does not read",
)
def test_dask_runner_writes_every_line_with_write_to_text(dask_cluster, tmp_path):
    pipeline = beam.Pipeline(options=_dask_options(dask_cluster))
    _ = pipeline | beam.Create([str(i) for i in range(10)]) | beam.io.WriteToText(str(tmp_path / "out"))
    pipeline.run().wait_until_finish(duration=WAIT_MS)
    lines = [line for p in tmp_path.glob("out-*") for line in p.read_text().split()]
    assert sorted(lines, key=int) == [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def raw_shards(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("dask-raw")
    generate(
        str(root),
        SynthConfig(kind="frame", videos=12, shards=2, classes=8, min_frames=5, max_frames=30, seed=7),
        progress=False,
    )
    with open(root / "train0001.tfrecord", "ab") as shard:  # one dead letter
        tfrecord_io.write_records(shard, [b"not a record"])
    return root


def _preprocess(raw_shards: pathlib.Path, output: pathlib.Path, *beam_args) -> dict:
    return preprocess.run(
        ["--input", f"{raw_shards}/train*.tfrecord", "--output", str(output), "--num-classes", "8",
         "--format", "parquet,tfrecord", "--num-shards", "2", "--view", "every_n:4", "--teacher-view",
         *beam_args]
    )  # fmt: skip


@pytest.fixture(scope="module")
def default_runner_dataset(raw_shards, tmp_path_factory) -> tuple[pathlib.Path, dict]:
    output = tmp_path_factory.mktemp("fnapi") / "ds"
    return output, _preprocess(raw_shards, output)


def _dataset_contents(directory: pathlib.Path) -> dict:
    """What a dataset holds, independent of sharding and row order: Parquet rows by id,
    TFRecord records, dead letters and the manifest's counts."""
    import pyarrow.parquet as pq
    import tensorflow as tf

    rows = pq.read_table(sorted(directory.glob("parquet/*.parquet"))).to_pylist()
    shards = [str(p) for p in directory.glob("tfrecord/*")]
    records = sorted(r.numpy() for r in tf.data.TFRecordDataset(shards))
    dead_letters = sorted(
        line for p in directory.glob("errors/*.jsonl") for line in p.read_text().splitlines()
    )
    counts = manifest.read_json(str(directory / preprocess.MANIFEST_NAME))
    return {
        "rows": sorted(rows, key=lambda r: r["id"]),
        "records": records,
        "dead_letters": dead_letters,
        "counts": {k: counts[k] for k in _MANIFEST_COUNTS},
    }


@_known_limitation(
    "the job's dead-letter outputs receive its rows "
    "(see test_dask_runner_keeps_a_pardos_tagged_outputs_apart), and JSON-encoding a row's bytes fails",
    raises=TypeError,
)
def test_preprocess_on_the_dask_runner_writes_the_default_runners_dataset(
    dask_cluster, raw_shards, default_runner_dataset, tmp_path
):
    expected, _ = default_runner_dataset
    _preprocess(raw_shards, tmp_path / "ds", *_dask_args(dask_cluster))
    assert _dataset_contents(tmp_path / "ds") == _dataset_contents(expected)


def test_summary_says_a_runner_reported_no_metrics_instead_of_printing_no_counters(
    dask_cluster, default_runner_dataset
):
    _, summary = default_runner_dataset
    assert "counters: " in preprocess.format_summary(summary, 1.0)
    pipeline = beam.Pipeline(options=_dask_options(dask_cluster))
    _ = pipeline | beam.Create([1]) | beam.Map(lambda n: n + 1)
    dask_result = pipeline.run()
    dask_result.wait_until_finish(duration=WAIT_MS)
    summary = {**summary}
    summary["counters"], summary["reading"] = preprocess._metrics(dask_result)
    dask_result.client.close()
    text = preprocess.format_summary(summary, 1.0)
    assert "  counters: metrics not reported by this runner" in text.splitlines()
    assert "reading:" not in text
