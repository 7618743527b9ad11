"""Creating pipelines that run locally without downloading anything.

Beam 2.77's DirectRunner first tries the Prism runner, which it downloads from the
internet, and falls back only after that fails. A local run here uses the FnApiRunner
directly (what DirectRunner picks for batch jobs anyway), so it honours
`--direct_num_workers` and `--direct_running_mode` and never reaches the network.
Any other `--runner` (DataflowRunner, PrismRunner, ...) is used as given.
"""

from __future__ import annotations

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
