# Dataflow worker image: Beam's SDK image of the pinned Beam version, with the exact
# versions of requirements.lock, so workers run what the launcher runs.
# Build from the repository root:
#   docker build -f docker/dataflow.Dockerfile -t IMAGE .
FROM apache/beam_python3.11_sdk:2.77.0

WORKDIR /opt/fewframes
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock
COPY setup.py README.md ./
COPY schemas schemas
COPY pipelines pipelines
COPY trainer trainer
RUN pip install --no-cache-dir --no-deps .
# The base image's ENTRYPOINT (/opt/apache/beam/boot) starts the SDK harness.
# It runs as root, on purpose: Beam's SDK image defines no non-root user (its Dockerfile,
# sdks/python/container/Dockerfile, has no USER or useradd), and boot pip-installs any
# package the job stages (the SDK, requirements.txt, extra packages, the workflow) into
# this image's root-owned site-packages, then works in the host-mounted
# --semi_persist_dir that Dataflow owns. A USER here would make a job that stages
# anything fail at worker start-up. Dataflow confines the container to its worker VM.
