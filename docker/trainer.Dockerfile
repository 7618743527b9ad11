# Training image: TensorFlow's GPU image of the pinned TF version (CUDA and cuDNN
# included, Python 3.11), with the exact versions of requirements.lock.
# Build from the repository root:
#   docker build -f docker/trainer.Dockerfile -t IMAGE .
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 KERAS_BACKEND=tensorflow
WORKDIR /opt/fewframes
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock
COPY setup.py README.md ./
COPY schemas schemas
COPY pipelines pipelines
COPY trainer trainer
RUN pip install --no-cache-dir --no-deps . \
    && useradd --create-home --uid 1000 fewframes
USER fewframes
WORKDIR /home/fewframes
# `docker run IMAGE --train gs://... --job-dir gs://... --mode teacher --teacher hlstm`;
# on Vertex AI the job dir may come from AIP_MODEL_DIR / AIP_CHECKPOINT_DIR instead.
ENTRYPOINT ["fewframes", "train"]
