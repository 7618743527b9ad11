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
