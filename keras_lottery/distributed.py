"""Data-parallel training on several processes or machines with ``tf.distribute``.

A run under :class:`tf.distribute.MultiWorkerMirroredStrategy` (``TF_CONFIG``
names the cluster and this process's task) trains every phase with the same
global batch split across the workers; Keras all-reduces the gradients, so
every worker holds the same weights after every step. What happens between
trainings (pruning, rewinding, controls) runs on every worker in the same
order; this module keeps the workers in agreement there:

- :func:`from_chief`: masks are decided by the chief (the worker holding
  replica 0) and applied by all (``pruning.set_masks`` calls it, so IMP,
  CS's hardening, controls and ``GradualPruning`` in ``fit`` are covered);
- :func:`check_in_sync`: before each training a digest of every variable (and
  the phase's name) is compared across workers; a difference raises
  :class:`~keras_lottery.errors.DistributedError` on every worker at once
  instead of training on silently different models;
- :func:`write_dir`: only the chief writes the run folder; the other workers
  read it (to resume) and write their phase files to a local temporary folder
  (:func:`worker_temp_dir`), as Keras's multi-worker checkpointing does.

Without a multi-worker strategy in scope (one process, ``MirroredStrategy``
on one host, a single-host ``TPUStrategy``, JAX, torch) every function here is
a no-op.

Example (each worker runs the same command with its own ``TF_CONFIG``):

>>> strategy = make_strategy("multi_worker")   # first, before any TF op
>>> run(load_config("configs/lenet_mnist.yaml"), out="/shared/runs",
...     strategy=strategy)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile

import keras
import numpy as np

from keras_lottery.errors import ConfigError, DistributedError

#: The values of ``--distribute`` / ``run(distribute=...)``.
STRATEGIES = ("mirrored", "multi_worker", "tpu")


def make_strategy(name: str):
    """The ``tf.distribute`` strategy called ``name`` (one of
    :data:`STRATEGIES`): ``mirrored`` (every local GPU, else the CPU),
    ``multi_worker`` (``MultiWorkerMirroredStrategy`` over the cluster in
    ``TF_CONFIG``), ``tpu`` (``TPUStrategy`` on the TPU named by ``TPU_NAME``,
    or the local one). Create it before anything else runs TensorFlow ops.

    >>> strategy = make_strategy("multi_worker")
    """
    if name not in STRATEGIES:
        raise ConfigError(
            f"Unknown distribution strategy {name!r}; allowed: {list(STRATEGIES)}."
        )
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(
            f"--distribute {name} uses tf.distribute: run with "
            f"KERAS_BACKEND=tensorflow (the backend is {keras.backend.backend()!r}; "
            "on JAX use keras.distribution)."
        )
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=os.environ.get("TPU_NAME", "")
    )
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _check_tf_config() -> None:
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ConfigError(
            "--distribute multi_worker needs TF_CONFIG, e.g. "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": 0}} (one index per process).'
        )
    try:
        config = json.loads(text)
        config["cluster"], config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"TF_CONFIG must be JSON with 'cluster' and 'task' ({{'type', "
            f"'index'}}); got {text!r} ({error})."
        ) from None


def scope(strategy):
    """``strategy.scope()``, or a no-op context for ``None``."""
    if strategy is None:
        return contextlib.nullcontext()
    if num_workers(strategy) > 1:
        _fix_keras_multi_worker_build()
    return strategy.scope()


def _fix_keras_multi_worker_build() -> None:
    """Lets ``model.fit`` and ``evaluate`` run under a multi-worker strategy on
    Keras 3, whose TensorFlow trainer fails there (keras-team/keras#20585) at
    two places, both about values that are already the same on every replica:

    - before building a model it averages the first (nested) input batch
      across replicas with ``strategy.reduce``, which takes no nested values
      across workers; only the batch's shapes are needed, so this worker's own
      batch is used;
    - it averages each step's logs across workers along axis 0, which fails
      for scalars; the logs are metric results, computed from metric variables
      that are summed across all replicas at every update, so this takes the
      first local replica's (Keras's own ``"first"`` reduction, which it uses
      on TPUs).

    Other strategies keep Keras's code.
    """
    try:
        from keras.src import tree
        from keras.src.backend.tensorflow import trainer

        keras_build = trainer.TensorFlowTrainer._maybe_symbolic_build
        keras_reduce = trainer.reduce_per_replica
    except (ImportError, AttributeError) as error:
        raise DistributedError(
            f"Multi-worker training patches two known issues of Keras's "
            f"TensorFlow trainer; this Keras ({keras.__version__}) does not have "
            f"the code it patches ({error})."
        ) from error
    if getattr(keras_build, "_keras_lottery_fix", False):
        return

    def symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or num_workers(strategy) == 1:
            return keras_build(self, iterator=iterator, data_batch=data_batch)
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0],
                    next(batches),
                )
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and num_workers(strategy) > 1:
            reduction = "first"
        return keras_reduce(values, strategy, reduction)

    symbolic_build._keras_lottery_fix = True
    trainer.TensorFlowTrainer._maybe_symbolic_build = symbolic_build
    trainer.reduce_per_replica = reduce_per_replica


def _multi_worker():
    """The strategy in scope if it spans more than one worker, else ``None``."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy():
        return None
    strategy = tf.distribute.get_strategy()
    return strategy if num_workers(strategy) > 1 else None


def num_workers(strategy) -> int:
    """How many worker processes ``strategy`` spans (1 without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return sum(len(spec.get(job, ())) for job in ("chief", "worker")) or 1


def is_chief(strategy=None) -> bool:
    """Whether this process writes the run folder: the ``chief`` task, else
    worker 0 of a cluster without one, else (no cluster) always.

    >>> is_chief()   # no strategy in scope
    True
    """
    if strategy is None:
        strategy = _multi_worker()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or num_workers(strategy) == 1:
        return True
    if resolver.task_type == "chief":
        return True
    jobs = resolver.cluster_spec().as_dict()
    return (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and ("chief" not in jobs)
    )


def worker_temp_dir(root: str, strategy=None) -> str:
    """The local folder a non-chief worker writes ``root``'s files to
    (``<tmp>/keras_lottery_workers/<root's name>_<task>_<index>``)."""
    if strategy is None:
        strategy = _multi_worker()
    resolver = strategy.cluster_resolver
    name = f"{os.path.basename(os.path.abspath(root))}_{resolver.task_type}"
    return os.path.join(
        tempfile.gettempdir(), "keras_lottery_workers", f"{name}_{resolver.task_id}"
    )


def write_dir(root: str) -> str:
    """Where this process writes the files of the run folder ``root``:
    ``root`` itself on the chief (and without a multi-worker strategy), its
    :func:`worker_temp_dir` on the other workers."""
    strategy = _multi_worker()
    if strategy is None or is_chief(strategy):
        return root
    return worker_temp_dir(root, strategy)


# --------------------------------------------------------------------- agreement


def from_chief(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The chief's values of ``arrays`` (same shapes and dtypes on every
    worker), on every worker: one all-reduce to which only replica 0
    contributes. Without a multi-worker strategy: ``arrays`` unchanged.

    >>> masks = from_chief([mask_a, mask_b])   # the chief decides, all apply
    """
    strategy = _multi_worker()
    if strategy is None or not arrays:
        return list(arrays)
    # Adding zeros is exact in any float type; masks travel as float32.
    small = all(np.asarray(a).dtype in (np.bool_, np.float32) for a in arrays)
    dtype = np.float32 if small else np.float64
    flat = np.concatenate([np.asarray(a, dtype).ravel() for a in arrays])
    reduced = _sum_from(strategy, flat, only_first=True)
    out, at = [], 0
    for a in arrays:
        a = np.asarray(a)
        out.append(reduced[at : at + a.size].reshape(a.shape).astype(a.dtype))
        at += a.size
    return out


def check_in_sync(model, what: str) -> None:
    """Raises :class:`~keras_lottery.errors.DistributedError` on every worker
    if the workers' variables of ``model`` (or the phase ``what`` they are
    about to train) differ; a no-op without a multi-worker strategy.

    >>> check_in_sync(model, "IMP round 2 (ticket)")
    """
    strategy = _multi_worker()
    if strategy is None:
        return
    from keras_lottery.pruning import sync_state

    sync_state(model)
    digest = hashlib.sha256(what.encode())
    for variable in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)))
    # 16-bit pieces of the digest: exact in float64 after the all-reduce.
    mine = np.frombuffer(digest.digest()[:16], np.uint16).astype(np.float64)
    chiefs = _sum_from(strategy, mine, only_first=True)
    differs = float(not np.array_equal(chiefs, mine))
    replicas = _sum_from(strategy, np.array([differs]), only_first=False)[0]
    # Every replica of a worker adds that worker's answer.
    per_worker = strategy.num_replicas_in_sync // num_workers(strategy)
    disagreeing = int(replicas) // max(1, per_worker)
    if disagreeing:
        raise DistributedError(
            f"Before {what}: {disagreeing} worker(s) hold different variables "
            "than the chief. The workers must resume from the same run folder "
            "(put --out on a filesystem every worker reads) with the same config, "
            "data and versions."
        )


def barrier() -> None:
    """Waits until every worker gets here (one small all-reduce); a no-op
    without a multi-worker strategy. The workers wait for the chief to finish
    writing a run folder, so none leaves while the chief still needs it."""
    strategy = _multi_worker()
    if strategy is not None:
        _sum_from(strategy, np.zeros(1), only_first=False)


def _sum_from(strategy, values: np.ndarray, only_first: bool) -> np.ndarray:
    """The sum of ``values`` over every replica, or, with ``only_first``, the
    values of replica 0 (the chief's first device; the others add zeros)."""
    import tensorflow as tf

    def contribution(context):
        mine = not only_first or context.replica_id_in_sync_group == 0
        return tf.constant(values if mine else np.zeros_like(values))

    per_replica = strategy.experimental_distribute_values_from_function(contribution)
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
    return np.asarray(total.numpy())
