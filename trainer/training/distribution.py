"""Training on several workers and devices: the strategy, each worker's share of the
data, and the distributed training step.

What runs where:
- TensorFlow, `TF_CONFIG` naming two or more workers: `MultiWorkerMirroredStrategy`, one
  replica per worker (or per GPU of a worker). A dead worker fails the others' next
  collective (`PeerLost`); `--collective-timeout` also bounds every collective, so a
  stuck one fails the run instead of hanging it. Each worker reads a disjoint share of
  the training data (`shares`).
- TensorFlow, one worker with several GPUs (or `--cpu-devices N`, which splits the CPU
  into N logical devices): `MirroredStrategy` over them.
- JAX with several devices: `keras.distribution.DataParallel` over them; Keras's `fit`
  splits each batch across the devices.
- Otherwise one device and Keras's `fit`.

Keras 3's `fit` cannot take a `tf.distribute` strategy's per-replica values of a dict
input (keras-team/keras#20585), so the TensorFlow strategies train through
`DistributedTrainer`: a step under `strategy.run`, Keras callbacks called as `fit` calls
them.

`--batch-size` is the global batch: the examples of one optimizer step summed over all
replicas of all workers. Each worker reads `batch / workers` examples a step and each
replica gets `batch / replicas`; the loss is each replica's mean divided by the number of
replicas, so the summed gradient is the gradient of the global batch's mean loss, as on
one device. Every worker takes the same number of steps per epoch: the fewest that any
worker's share fills (`steps_per_epoch`).

The strategy must exist before anything touches TensorFlow's devices ("Collective ops
must be configured at program startup"), so `create` runs first in `trainer.training.loop.train`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json

import numpy as np

from trainer import inputs

ENV_CPU_DEVICES = "FEWFRAMES_CPU_DEVICES"
DEFAULT = "default"
MIRRORED = "MirroredStrategy"
MULTI_WORKER = "MultiWorkerMirroredStrategy"
DATA_PARALLEL = "DataParallel"
BY_FILES, BY_ROW_GROUPS, BY_RECORDS = "files", "row_groups", "records"


class PeerLost(RuntimeError):
    """A collective with the other workers failed: a peer died or stopped answering."""


# ----- the cluster and the strategy ----------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place in `TF_CONFIG`'s cluster: workers are numbered chief first."""

    chief: bool = True
    workers: int = 1
    worker: int = 0
    spec: dict = dataclasses.field(default_factory=dict)
    task_type: str = "worker"
    task_index: int = 0


def cluster_from_environ(environ) -> Cluster:
    tf_config = json.loads(environ.get("TF_CONFIG") or "{}")
    spec = {role: list(tf_config.get("cluster", {}).get(role, [])) for role in ("chief", "worker")}
    spec = {role: hosts for role, hosts in spec.items() if hosts}
    workers = sum(len(hosts) for hosts in spec.values())
    if workers <= 1:
        return Cluster()
    task = tf_config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    chief = kind == "chief" or ("chief" not in spec and kind == "worker" and index == 0)
    worker = index if kind == "chief" else len(spec.get("chief", [])) + index
    return Cluster(chief, workers, worker, spec, kind, index)


@dataclasses.dataclass
class Distribution:
    """The strategy a job trains under and its shape."""

    kind: str = DEFAULT
    cluster: Cluster = dataclasses.field(default_factory=Cluster)
    replicas: int = 1
    strategy: object = None  # a tf.distribute strategy (TensorFlow backend), else None

    @property
    def workers(self) -> int:
        return self.cluster.workers

    @property
    def worker(self) -> int:
        return self.cluster.worker

    @property
    def custom_loop(self) -> bool:
        """Trains through `DistributedTrainer` rather than Keras's `fit`."""
        return self.kind in (MIRRORED, MULTI_WORKER)

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def worker_batch(self, batch_size: int) -> int:
        """Examples each worker reads per step, `batch_size` being the global batch."""
        if batch_size % self.replicas:
            raise ValueError(
                f"--batch-size {batch_size} is the global batch and must be a multiple of the "
                f"{self.replicas} replicas ({self.kind})"
            )
        return batch_size // self.workers

    def summary(self, examples_per_worker: list[int], batch_size: int) -> dict:
        return {
            "strategy": self.kind,
            "workers": self.workers,
            "replicas": self.replicas,
            "examples_per_worker": list(examples_per_worker),
            "global_batch": batch_size,
            "per_replica_batch": batch_size // self.replicas,
        }


def create(environ, backend: str, cpu_devices: int | None = None, collective_timeout=None) -> Distribution:
    """The job's strategy, from TF_CONFIG, the visible accelerators and `cpu_devices`
    (None: $FEWFRAMES_CPU_DEVICES, else 1). Call it before anything touches TF's devices."""
    cluster = cluster_from_environ(environ)
    if cpu_devices is None:
        cpu_devices = int(environ.get(ENV_CPU_DEVICES) or 1)
    if backend != "tensorflow":
        if cluster.workers > 1:
            raise ValueError(
                f"TF_CONFIG names {cluster.workers} workers: training on several workers needs the "
                f"TensorFlow backend (this is {backend})"
            )
        if backend == "jax":
            return _jax_data_parallel()
        return Distribution(cluster=cluster)
    import tensorflow as tf

    if cpu_devices > 1:
        # Logical devices can only be set before TF initializes its devices.
        cpu = tf.config.list_physical_devices("CPU")[0]
        logical = [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        try:
            tf.config.set_logical_device_configuration(cpu, logical)
        except RuntimeError:  # TF started already (a second job in this process)
            if len(tf.config.list_logical_devices("CPU")) != cpu_devices:
                raise ValueError(
                    f"--cpu-devices {cpu_devices}: TensorFlow already runs on "
                    f"{len(tf.config.list_logical_devices('CPU'))} CPU devices in this process"
                ) from None
    if cluster.workers > 1:
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster.spec),
            task_type=cluster.task_type,
            task_id=cluster.task_index,
            rpc_layer="grpc",
        )
        # A dead worker is found by the coordination service's heartbeats; the timeout also
        # bounds a collective that a live but stuck worker never joins. TF starts a
        # watchdog thread per collective for it, so it is off unless asked for.
        timeout = float(collective_timeout or 0) or None
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver, communication_options=options
        )
        return Distribution(MULTI_WORKER, cluster, strategy.num_replicas_in_sync, strategy)
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
    elif cpu_devices > 1 and not gpus:
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(cpu_devices)])
    else:
        return Distribution(cluster=cluster, strategy=tf.distribute.get_strategy())
    return Distribution(MIRRORED, cluster, strategy.num_replicas_in_sync, strategy)


def _jax_data_parallel() -> Distribution:
    """DataParallel over every visible JAX device (several GPUs, or host devices forced
    by XLA_FLAGS=--xla_force_host_platform_device_count=N)."""
    import keras

    devices = keras.distribution.list_devices()  # the default platform's: GPUs where there are
    if len(devices) <= 1:
        return Distribution()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return Distribution(DATA_PARALLEL, Cluster(), len(devices))


# ----- each worker's share of the data -------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Share:
    """What one worker reads: whole files, or some row groups (Parquet) / every
    `workers`-th record (TFRecord) of every file when there are fewer files than workers."""

    worker: int
    workers: int
    by: str
    files: tuple[str, ...]
    row_groups: frozenset = frozenset()  # (path, index) pairs, when by == BY_ROW_GROUPS
    examples: int = 0


def shares(dataset_dir: str, fmt: str, workers: int) -> list[Share]:
    """Disjoint shares of a dataset that together cover it, one per worker.

    Parquet: row groups (the reading unit) are dealt, each to the worker holding the
    fewest rows so far, so shares differ by at most one row group even when the writer
    left some files empty. TFRecord: whole files are dealt the same way when there are at
    least as many as workers and each worker gets at least half its part, else records
    (record i of the files in order to worker i mod workers; every worker then reads
    every file). TFRecord files are read once here to count their records. Every
    worker computes every share the same way, so all agree on the steps per epoch.
    """
    from schemas.preprocessed import PARQUET

    files = inputs.dataset_files(dataset_dir, fmt)
    if fmt == PARQUET:
        import pyarrow.parquet as pq

        groups = []
        for path in files:
            metadata = pq.ParquetFile(path).metadata
            groups += [((path, i), metadata.row_group(i).num_rows) for i in range(metadata.num_row_groups)]
        if len(groups) < workers:
            raise ValueError(
                f"{dataset_dir} has {len(groups)} Parquet row groups, fewer than the {workers} workers: "
                "rewrite it with more shards or smaller row groups (--parquet-row-group-mb)"
            )
        dealt = _deal(groups, workers)
        return [
            Share(w, workers, BY_ROW_GROUPS, tuple(dict.fromkeys(path for (path, _), _ in mine)),
                  frozenset(group for group, _ in mine), sum(n for _, n in mine))
            for w, mine in enumerate(dealt)
        ]  # fmt: skip
    counts = [(path, _count_records(path)) for path in files]
    total = sum(n for _, n in counts)
    dealt = _deal(counts, workers) if len(files) >= workers else None
    # Whole files, unless that leaves a worker less than half its part (it would cut every
    # worker's steps to its share's).
    if dealt is not None and min(sum(n for _, n in mine) for mine in dealt) * 2 * workers >= total:
        return [
            Share(w, workers, BY_FILES, tuple(p for p, _ in mine), examples=sum(n for _, n in mine))
            for w, mine in enumerate(dealt)
        ]
    return [
        Share(w, workers, BY_RECORDS, tuple(files), examples=len(range(w, total, workers)))
        for w in range(workers)
    ]


def _deal(units: list[tuple[object, int]], workers: int) -> list[list[tuple[object, int]]]:
    """(unit, rows) pairs dealt largest first, each to the worker with the fewest rows
    (the lowest index on a tie); each worker's units stay in dataset order."""
    order = sorted(range(len(units)), key=lambda i: (-units[i][1], i))
    hands, rows = [[] for _ in range(workers)], [0] * workers
    for i in order:
        w = min(range(workers), key=lambda w: (rows[w], w))
        hands[w].append(i)
        rows[w] += units[i][1]
    return [[units[i] for i in sorted(hand)] for hand in hands]


def _count_records(path: str) -> int:
    """Records in a TFRecord file (one read of it: TFRecord has no index)."""
    import tensorflow as tf

    compression = "GZIP" if path.endswith(".gz") else None
    records = tf.data.TFRecordDataset(path, compression_type=compression)
    return int(records.reduce(np.int64(0), lambda n, _: n + 1))


def steps_per_epoch(all_shares: list[Share], worker_batch: int) -> int:
    """The steps every worker takes per epoch: as many as the smallest share fills with
    whole batches, so no worker waits in an all-reduce that another never joins."""
    steps = min(share.examples for share in all_shares) // worker_batch
    if steps < 1:
        raise ValueError(
            f"a worker's share holds {min(s.examples for s in all_shares)} examples, fewer than a "
            f"worker's batch of {worker_batch}: use a smaller --batch-size or fewer workers"
        )
    return steps


# ----- the distributed training step ---------------------------------------------------
class DistributedTrainer:
    """One optimizer step per global batch under `strategy.run`, for a `DistillationModel`.

    Logs (`loss` and the model's loss terms, epoch means as `fit` reports them) are the
    mean over replicas. A stop request (SIGTERM) on any worker stops every worker after
    the same step, so none waits in an all-reduce the others left.
    """

    def __init__(self, distribution: Distribution, model):
        import keras
        import tensorflow as tf

        self.distribution, self.model = distribution, model
        strategy = distribution.strategy
        with strategy.scope():
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            self.loss_tracker = keras.metrics.Mean(name="loss")
        replicas = distribution.replicas
        trackers = {"loss": self.loss_tracker, **model.trackers}

        def replica_step(data, stop):
            x, y = data
            with tf.GradientTape() as tape:
                y_pred = model(x, training=True)
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
                self.loss_tracker.update_state(loss)
                scaled = loss / replicas  # the all-reduce sums: the global batch's mean
                if hasattr(model.optimizer, "scale_loss"):
                    scaled = model.optimizer.scale_loss(scaled)
            weights = model.trainable_weights
            model.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights, strict=True))
            logs = {name: tracker.result() for name, tracker in trackers.items()}
            # The identity places the flag on this replica's device: an all-reduce of a
            # tensor without a device has no destination.
            logs["stop"] = tf.identity(stop)
            # One batched all-reduce for every log: each collective costs a round trip
            # (and, with a collective timeout, a watchdog thread).
            summed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, logs)
            return {name: value / replicas for name, value in summed.items()}

        @tf.function
        def step(iterator, stop):
            logs = strategy.run(replica_step, args=(next(iterator), stop))
            return {k: strategy.experimental_local_results(v)[0] for k, v in logs.items()}

        self._step = step
        self._trackers = trackers

    def dataset(self, batches, per_replica: int):
        """Per-worker `(x, y)` batches (numpy iterator or tf.data) -> a distributed dataset
        of per-replica batches, dealt to this worker's replicas in turn."""
        import tensorflow as tf

        if not isinstance(batches, tf.data.Dataset):
            iterator = iter(batches)
            first = next(iterator)
            signature = tf.nest.map_structure(
                lambda a: tf.TensorSpec((None, *np.shape(a)[1:]), tf.as_dtype(np.asarray(a).dtype)), first
            )

            def generate():
                yield first
                yield from iterator

            batches = tf.data.Dataset.from_generator(generate, output_signature=signature)
        dataset = batches.unbatch().batch(per_replica, drop_remainder=True).prefetch(2)
        return self.distribution.strategy.distribute_datasets_from_function(lambda context: dataset)

    def fit_epoch(self, batches, batch_size: int, steps: int, epoch: int, callbacks, stop, agreed) -> dict:
        """Train `steps` global batches of `batch_size`; {name: [epoch value]} like
        `fit(...).history`. `batches`: this worker's batches of `batch_size / workers`.

        `stop` is this worker's stop request (SIGTERM); `agreed` (what the callbacks see)
        is set when any worker's request reached the step's all-reduce, so every worker
        stops after the same step even when a signal lands in the middle of one."""
        import keras
        import tensorflow as tf

        per_replica = batch_size // self.distribution.replicas
        iterator = iter(self.dataset(batches, per_replica))
        history = keras.callbacks.History()  # last: it sees what callbacks add (eval metrics)
        callback_list = keras.callbacks.CallbackList([*callbacks, history], model=self.model)
        self.model.stop_training = False
        for tracker in self._trackers.values():
            tracker.reset_state()
        callback_list.on_train_begin()
        callback_list.on_epoch_begin(epoch)
        logs = {}
        lost = (
            tf.errors.UnavailableError,
            tf.errors.DeadlineExceededError,
            tf.errors.CancelledError,
            tf.errors.AbortedError,
            tf.errors.InternalError,
        )
        for batch in range(steps):
            callback_list.on_train_batch_begin(batch)
            try:
                result = self._step(iterator, tf.constant(1.0 if stop.requested or agreed.requested else 0.0))
                logs = {k: float(v) for k, v in result.items()}
            except lost as error:
                raise PeerLost(
                    f"worker {self.distribution.worker}: a collective with the other workers failed at "
                    f"epoch {epoch + 1}, batch {batch + 1} ({type(error).__name__}: a worker died or "
                    "stopped answering); "
                    "rerun the same command on every worker to resume from the last checkpoint"
                ) from None
            if logs.pop("stop") > 0:
                agreed.requested = True
            callback_list.on_train_batch_end(batch, logs)
            if self.model.stop_training:
                break
        callback_list.on_epoch_end(epoch, logs)
        callback_list.on_train_end(logs)
        return history.history
