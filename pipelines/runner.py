"""Creating pipelines that run locally without downloading anything.

Beam 2.77's DirectRunner first tries the Prism runner, which it downloads from the
internet, and falls back only after that fails. A local run here uses the FnApiRunner
directly (what DirectRunner picks for batch jobs anyway), so it honours
`--direct_num_workers` and `--direct_running_mode` and never reaches the network.
Any other `--runner` (DataflowRunner, PrismRunner, ...) is used as given.
"""

from __future__ import annotations

import logging
import sys
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

_LOCAL_RUNNER_NAMES = {None, "DirectRunner", "direct", "FnApiRunner"}


def is_local(options: PipelineOptions) -> bool:
    return options.view_as(StandardOptions).runner in _LOCAL_RUNNER_NAMES


def local_runner(options: PipelineOptions):
    """An FnApiRunner configured like DirectRunner would configure it."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision_info = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    )
    return fn_runner.FnApiRunner(provision_info=provision_info)


def create_pipeline(options: PipelineOptions) -> beam.Pipeline:
    if is_local(options):
        return beam.Pipeline(runner=local_runner(options), options=options)
    return beam.Pipeline(options=options)


def dataset_job_main(prog: str, run, format_summary, usage_error: type[Exception], argv=None) -> int:
    """The console `main` of a job that writes a dataset and its manifest (preprocess,
    teacher-targets): 2 on a usage error (one line), else the summary, and 1 unless the
    manifest balances (records read = written + failed)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pipelines").setLevel(logging.INFO)
    start = time.time()
    try:
        summary = run(argv)
    except usage_error as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary, time.time() - start))
    return 0 if summary["balanced"] else 1
