"""Training under ``tf.distribute``: which strategy, which recordings each worker reads, what the
workers agree on before they train, and the input pipeline the strategy feeds its replicas.

- Several workers named in ``TF_CONFIG`` (the standard JSON) -> MultiWorkerMirroredStrategy;
  several GPUs in one process -> MirroredStrategy; otherwise ``None``: training.train keeps its
  single-process path (the default strategy) unchanged.
- Recordings are sharded by file: worker ``i`` of ``n`` reads files ``i, i+n, ...`` of the list
  the ``--data`` arguments give (directories expanded and sorted), so no recording is decoded
  twice. Every worker must be given the same list; they check it before training.
- Before training the workers exchange small facts (``allgather_json``): the rule classes each
  saw (the model's per-rule head must be the same everywhere), how many training and validation
  frames each holds (every worker must run the same number of steps) and their data
  fingerprints.
- ``config.batch_size`` is the GLOBAL batch: each replica gets ``batch_size / replicas``.
- Only the chief (rank 0) writes into ``--out``; the other workers run the same saves into a
  temp directory that is removed afterwards (the standard multi-worker pattern: every worker
  takes the same path through ``fit``, so no collective waits for one that went elsewhere).

TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError, DataError, TrainingError

__all__ = [
    "Cluster",
    "Job",
    "StepPlan",
    "allgather_json",
    "cluster_from_env",
    "create_strategy",
    "distributed_batches",
    "files_digest",
    "local_strategy",
    "prepare_model",
    "shard_files",
]

log = logging.getLogger(__name__)

# TensorFlow's coordination service declares a worker dead after 10 s without a heartbeat. On
# a loaded 2-core machine (two workers training beside other jobs) worker 0's heartbeat went
# unanswered that long and the job failed (clean-clone CI, December 2026). A worker that really
# dies still fails the job, only later: after this many seconds.
HEARTBEAT_TIMEOUT_S = 120

_UNSUPPORTED_TASKS = ("ps", "evaluator")


@dataclass(frozen=True)
class Cluster:
    """This process's place in the training job: ``rank`` 0 is the chief."""

    n_workers: int = 1
    rank: int = 0

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    @property
    def multi_worker(self) -> bool:
        return self.n_workers > 1


def cluster_from_env(env: Mapping[str, str] | None = None) -> Cluster:
    """The cluster ``TF_CONFIG`` describes; one worker when it is unset or names one.

    The chief is ``task.type == "chief"`` when the cluster has one, else worker 0; ranks follow
    the chief, then the ``worker`` list in order. A malformed TF_CONFIG is a ConfigError naming it.
    """
    raw = (os.environ if env is None else env).get("TF_CONFIG", "").strip()
    if not raw:
        return Cluster()

    def bad(why: str) -> ConfigError:
        return ConfigError(f"TF_CONFIG: {why} (got {raw[:200]!r})")

    try:
        cfg = json.loads(raw)
    except ValueError as exc:
        raise bad(f"not valid JSON ({exc})") from exc
    if not isinstance(cfg, dict) or not isinstance(cfg.get("cluster"), dict):
        raise bad('needs a "cluster" object, e.g. {"cluster": {"worker": ["host:port", ...]}, ...}')
    cluster = cfg["cluster"]
    for kind in _UNSUPPORTED_TASKS:
        if cluster.get(kind):
            raise bad(f'"{kind}" tasks are not supported (MultiWorkerMirroredStrategy only)')
    unknown = set(cluster) - {"chief", "worker", *_UNSUPPORTED_TASKS}
    if unknown:
        raise bad(f"unknown task types in cluster: {sorted(unknown)}")
    groups: dict[str, list[str]] = {}
    for kind in ("chief", "worker"):
        addrs = cluster.get(kind, [])
        if not isinstance(addrs, list) or not all(
            isinstance(a, str) and a.rpartition(":")[2].isdigit() and a.rpartition(":")[0]
            for a in addrs
        ):
            raise bad(f'cluster.{kind} must be a list of "host:port" strings')
        groups[kind] = addrs
    if len(groups["chief"]) > 1:
        raise bad("at most one chief")
    everyone = groups["chief"] + groups["worker"]
    if not everyone:
        raise bad("cluster names no worker")
    if len(set(everyone)) != len(everyone):
        raise bad("two tasks share an address")
    task = cfg.get("task")
    if not isinstance(task, dict):
        raise bad('needs a "task" object, e.g. {"type": "worker", "index": 0}')
    kind, index = str(task.get("type")), task.get("index")
    if kind not in groups or not groups[kind]:
        raise bad(f"task.type {kind!r} is not a task type of the cluster")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(groups[kind]):
        raise bad(f"task.index {index!r} is not an index of cluster.{kind}")
    rank = index if kind == "chief" else len(groups["chief"]) + index
    return Cluster(len(everyone), rank)


def shard_files(files: Sequence[Path], cluster: Cluster) -> list[Path]:
    """This worker's share: files ``rank, rank + n, ...``; DataError when there are fewer files
    than workers (a worker without a recording cannot take part in the job)."""
    if len(files) < cluster.n_workers:
        raise DataError(
            f"{len(files)} recording file(s) for {cluster.n_workers} workers: input is sharded "
            "by file, so every worker needs at least one (split the recordings into more files "
            "or run fewer workers)"
        )
    return list(files[cluster.rank :: cluster.n_workers])


def files_digest(files: Sequence[Path]) -> str:
    """What the workers compare to be sure they shard the same list."""
    return hashlib.sha256("\n".join(map(str, files)).encode()).hexdigest()[:16]


def create_strategy(cluster: Cluster, threads: int = 0) -> Any:
    """MultiWorkerMirroredStrategy for a multi-worker cluster (create it before any other
    TensorFlow op: it configures the runtime), else :func:`local_strategy`."""
    if threads:
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    import tensorflow as tf

    if not cluster.multi_worker:
        return local_strategy()
    _configure_coordination(HEARTBEAT_TIMEOUT_S)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    log.info(
        "MultiWorkerMirroredStrategy: worker %d of %d, %d replicas in sync",
        cluster.rank,
        cluster.n_workers,
        strategy.num_replicas_in_sync,
    )
    return strategy


def _configure_coordination(heartbeat_timeout_s: int) -> None:
    """Configure TensorFlow's coordination service as MultiWorkerMirroredStrategy would (the
    same leader and jobs; it keeps a service that is already configured), with our heartbeat
    timeout instead of its 10 s default."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.distribute.cluster_resolver import TFConfigClusterResolver
    from tensorflow.python.eager import context

    if context.context().coordination_service is not None:
        return
    spec = TFConfigClusterResolver().cluster_spec()
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        heartbeat_timeout_in_ms=heartbeat_timeout_s * 1000,
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker")
            if job in spec.jobs
        ],
    )


def local_strategy() -> Any:
    """MirroredStrategy when this process sees several GPUs, else None (the default strategy)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) < 2:
        return None
    strategy = tf.distribute.MirroredStrategy()
    log.info("MirroredStrategy over %d GPUs", strategy.num_replicas_in_sync)
    return strategy


def allgather_json(strategy: Any, cluster: Cluster, obj: Any) -> list[Any]:
    """Every worker's ``obj`` (JSON-able), ordered by rank, through the strategy's collectives
    (two small all-gathers: the lengths, then the padded bytes). Every worker must call it."""
    import tensorflow as tf

    payload = json.dumps({"rank": cluster.rank, "obj": obj}, sort_keys=True).encode()

    def gather(row: np.ndarray) -> np.ndarray:
        local = strategy.run(lambda: tf.constant(row[None, :]))
        return np.asarray(strategy.gather(local, axis=0))

    longest = int(gather(np.array([len(payload)], np.int32)).max())
    buf = np.zeros(longest, np.int32)
    buf[: len(payload)] = np.frombuffer(payload, np.uint8)
    by_rank: dict[int, Any] = {}
    for row in gather(buf):  # one row per replica: a worker with several devices sends copies
        item = json.loads(bytes(row[row > 0].astype(np.uint8)).decode())
        by_rank[item["rank"]] = item["obj"]
    if sorted(by_rank) != list(range(cluster.n_workers)):
        raise ConfigError(
            f"TF_CONFIG: expected workers 0..{cluster.n_workers - 1}, heard from {sorted(by_rank)}"
        )
    return [by_rank[r] for r in range(cluster.n_workers)]


@dataclass(frozen=True)
class StepPlan:
    """Batches and steps every worker runs (they must match: each step is a collective)."""

    replicas: int  # in sync, all workers
    local_replicas: int  # on this worker
    batch: int  # per replica
    steps_per_epoch: int
    val_batch: int  # per replica
    val_steps: int  # 0 = no validation

    @classmethod
    def make(
        cls,
        strategy: Any,
        global_batch: int,
        n_train_total: int,
        n_val_per_worker: Sequence[int],
        val_global_batch: int = 256,
    ) -> StepPlan:
        replicas = int(strategy.num_replicas_in_sync)
        local = len(strategy.extended.worker_devices)
        if global_batch % replicas:
            raise ConfigError(
                f"batch_size {global_batch} is the global batch and must divide by the "
                f"{replicas} replicas in sync"
            )
        val_batch = max(1, val_global_batch // replicas)
        val_steps = max(
            (math.ceil(math.ceil(n / val_batch) / local) for n in n_val_per_worker), default=0
        )
        return cls(
            replicas=replicas,
            local_replicas=local,
            batch=global_batch // replicas,
            steps_per_epoch=max(1, math.ceil(n_train_total / global_batch)),
            val_batch=val_batch,
            val_steps=val_steps,
        )


Batch = tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]


class _Shuffled:
    """Endless shuffled passes over ``n`` frames, ``batch`` indices at a time (a batch may span
    two passes)."""

    def __init__(self, n: int, batch: int, seed: Sequence[int]) -> None:
        self.n, self.batch = n, batch
        self.rng = np.random.default_rng(list(seed))
        self.order = self.rng.permutation(n)
        self.pos = 0

    def take(self) -> np.ndarray:
        out: list[np.ndarray] = []
        need = self.batch
        while need:
            if self.pos >= self.n:
                self.order, self.pos = self.rng.permutation(self.n), 0
            chunk = self.order[self.pos : self.pos + need]
            self.pos += len(chunk)
            out.append(chunk)
            need -= len(chunk)
        return np.sort(np.concatenate(out))


def _train_stream(
    ds: Any, batch: int, seed: Sequence[int], token_dropout: float = 0.0, split_words: float = 0.0
) -> Callable[[], Iterator[Batch]]:
    """The worker's training frames, shuffled, endlessly. The order lives outside the generator,
    so a restarted iterator continues instead of replaying the same order. ``token_dropout``,
    ``split_words``: ArrayDataset.inputs."""
    order = _Shuffled(len(ds), batch, seed)
    rng = np.random.default_rng([*seed, 1])

    def gen() -> Iterator[Batch]:
        while True:
            idx = order.take()
            y, w = ds.targets(idx)
            yield ds.inputs(idx, token_dropout, rng, split_words), y, w

    return gen


def _val_stream(ds: Any, pad: Any, batch: int, n_batches: int) -> Callable[[], Iterator[Batch]]:
    """The worker's validation frames in order, then zero-weight frames until ``n_batches`` full
    batches: padding keeps the workers in step without counting any frame twice. ``pad`` gives
    the frames when this worker has no validation frames at all."""

    def gen() -> Iterator[Batch]:
        for b in range(n_batches):
            idx = np.arange(b * batch, min((b + 1) * batch, len(ds)))
            real = len(idx)
            src = ds if real else pad
            idx = np.concatenate([idx, np.zeros(batch - real, np.int64)])
            y, w = src.targets(idx)
            keep = (np.arange(batch) < real).astype(np.float32)
            w = {k: v * keep.reshape(-1, *([1] * (v.ndim - 1))) for k, v in w.items()}
            yield src.inputs(idx), y, w

    return gen


def _example(ds: Any, batch: int) -> Batch:
    idx = np.arange(min(batch, len(ds)))
    y, w = ds.targets(idx)
    return ds.inputs(idx), y, w


def distributed_batches(strategy: Any, make: Callable[[], Iterator[Batch]], example: Batch) -> Any:
    """A distributed dataset of the generator's per-replica batches. The workers shard by file
    themselves, so nothing is auto-sharded or re-batched (``distribute_datasets_from_function``
    hands each replica the batches its worker's pipeline yields, as they are)."""
    import tensorflow as tf

    spec = tuple(
        {k: tf.TensorSpec((None, *v.shape[1:]), tf.as_dtype(v.dtype)) for k, v in part.items()}
        for part in example
    )

    def dataset_fn(_: Any) -> Any:
        ds = tf.data.Dataset.from_generator(make, output_signature=spec)
        opts = tf.data.Options()
        opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(opts).prefetch(2)

    return strategy.distribute_datasets_from_function(dataset_fn)


@dataclass(frozen=True)
class Job:
    """A training run under a strategy: the strategy, this worker, and the counts all workers
    agreed on (training.train)."""

    strategy: Any
    cluster: Cluster
    n_train_total: int
    n_val_per_worker: tuple[int, ...]

    def plan(self, global_batch: int) -> StepPlan:
        return StepPlan.make(self.strategy, global_batch, self.n_train_total, self.n_val_per_worker)

    def describe(self, global_batch: int) -> dict[str, Any]:
        """For checkpoint.json: how the model was trained."""
        plan = self.plan(global_batch)
        import tensorflow as tf

        kinds = {  # the public names (MultiWorkerMirroredStrategy's class has another)
            "MultiWorkerMirroredStrategy": tf.distribute.MultiWorkerMirroredStrategy,
            "MirroredStrategy": tf.distribute.MirroredStrategy,
        }
        name = next((n for n, k in kinds.items() if isinstance(self.strategy, k)), None)
        return {
            "strategy": name or type(self.strategy).__name__,
            "workers": self.cluster.n_workers,
            "replicas": plan.replicas,
            "batch_per_replica": plan.batch,
            "steps_per_epoch": plan.steps_per_epoch,
        }

    def scope(self) -> Any:
        return self.strategy.scope()

    def fit(
        self,
        model: Any,
        train_ds: Any,
        val_ds: Any,
        global_batch: int,
        epochs: int,
        seed: int,
        callbacks: list[Any],
        verbose: int,
        token_dropout: float = 0.0,
        split_words: float = 0.0,
    ) -> Any:
        """``model.fit`` on this worker's frames, every worker in step (see :class:`StepPlan`)."""
        plan = self.plan(global_batch)
        prepare_model(model, self.strategy, _example(train_ds, plan.batch))
        train = distributed_batches(
            self.strategy,
            _train_stream(
                train_ds, plan.batch, (seed, self.cluster.rank), token_dropout, split_words
            ),
            _example(train_ds, plan.batch),
        )
        val = None
        if plan.val_steps:
            src = val_ds if len(val_ds) else train_ds
            val = distributed_batches(
                self.strategy,
                _val_stream(val_ds, train_ds, plan.val_batch, plan.val_steps * plan.local_replicas),
                _example(src, plan.val_batch),
            )
        log.info(
            "worker %d/%d: %d train + %d val frames here; %d steps/epoch of %d x %d, %d val steps",
            self.cluster.rank,
            self.cluster.n_workers,
            len(train_ds),
            len(val_ds),
            plan.steps_per_epoch,
            plan.replicas,
            plan.batch,
            plan.val_steps,
        )
        import tensorflow as tf

        try:
            return model.fit(
                train,
                steps_per_epoch=plan.steps_per_epoch,
                validation_data=val,
                validation_steps=plan.val_steps or None,
                epochs=epochs,
                shuffle=False,
                callbacks=callbacks,
                verbose=verbose,
            )
        except tf.errors.OpError as exc:  # a collective failed: a worker died or disagrees
            raise TrainingError(
                f"worker {self.cluster.rank} of {self.cluster.n_workers}: a distributed step "
                f"failed ({type(exc).__name__}: {_why(str(exc))}); a worker stopped or cannot "
                "be reached: rerun the whole job"
            ) from exc


def _why(message: str) -> str:
    """The line of a TensorFlow error that says what happened (its first line is usually
    "Graph execution error:"), with the task it names."""
    lines = [x.strip() for x in message.splitlines() if x.strip()]
    for i, line in enumerate(lines):
        if any(k in line for k in ("unhealthy", "mismatch", "failed to connect", "aborted")):
            task = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith("/job:") else ""
            return f"{line} {task}".strip()[:400]
    return lines[0][:400] if lines else ""


def prepare_model(model: Any, strategy: Any, example: Batch) -> None:
    """Work around two Keras 3.15 TF-trainer faults under tf.distribute (checked here):

    - ``fit`` builds the model's compile state from a batch it first reduces across replicas
      with ``strategy.reduce`` -- which fails on dict inputs ("unsupported type <class 'dict'>").
      The state is built here from one local batch, under the scope, and that step is skipped.
    - With several workers the step's logs are reduced with ``strategy.reduce(MEAN, axis=0)``,
      which fails on scalar logs ("Invalid reduction dimension 0 for input with 0 dimensions";
      keras-team/keras#20585, tensorflow/tensorflow#72388): the steps return them as [1].
    Both patch this model instance only.
    """
    import tensorflow as tf

    with strategy.scope():
        model._symbolic_build(data_batch=example)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    for name in ("train_step", "test_step"):
        step = getattr(model, name)

        def as_rank1(data: Any, step: Any = step) -> dict[str, Any]:
            return {k: tf.reshape(v, [1]) for k, v in step(data).items()}

        setattr(model, name, as_rank1)
