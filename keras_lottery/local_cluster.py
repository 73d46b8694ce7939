"""Clusters of processes on this machine (127.0.0.1): the environment each
process of a ``tf.distribute`` multi-worker cluster or of a Keras Tuner
distributed search needs, for tests, benchmarks and trying either out before
moving to several machines (docs/distributed.md).

Every process gets one TensorFlow op thread (several processes share the
cores), no TensorFlow info logs, and loopback traffic that bypasses any HTTP
proxy (gRPC honours ``http_proxy``). Cluster variables inherited from the
parent (``TF_CONFIG``, ``KERASTUNER_*``) are removed first, so a process is a
worker only when told so.

Example (a 2-worker ``keras-lottery run --distribute multi_worker``):

>>> ports = free_ports(2)
>>> workers = [
...     subprocess.Popen(
...         ["keras-lottery", "run", "config.yaml", "--distribute", "multi_worker"],
...         env=process_env(tf_config=tf_config(ports, index)),
...     )
...     for index in range(2)
... ]
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence

HOST = "127.0.0.1"

#: Cluster variables a process inherits from no one.
CLUSTER_VARIABLES = (
    "TF_CONFIG",
    "KERASTUNER_TUNER_ID",
    "KERASTUNER_ORACLE_IP",
    "KERASTUNER_ORACLE_PORT",
)


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 now (all held open at once
    while picking, so they differ).

    >>> len(set(free_ports(3)))
    3
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1; got {n!r}.")
    sockets = [socket.socket() for _ in range(n)]
    try:
        for probe in sockets:
            probe.bind((HOST, 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def tf_config(ports: Sequence[int], index: int) -> str:
    """``TF_CONFIG`` of worker ``index`` of a cluster of workers on ``ports``
    (worker 0 is the chief).

    >>> json.loads(tf_config([2222, 2223], 1))["task"]
    {'type': 'worker', 'index': 1}
    """
    if not 0 <= index < len(ports):
        raise ValueError(f"index must be in [0, {len(ports)}); got {index!r}.")
    cluster = {"worker": [f"{HOST}:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def tuner_variables(tuner_id: str, port: int) -> dict[str, str]:
    """Keras Tuner's variables for process ``tuner_id`` (``"chief"`` runs the
    oracle on ``port``; any other id is a worker).

    >>> tuner_variables("worker0", 8000)["KERASTUNER_ORACLE_IP"]
    '127.0.0.1'
    """
    return {
        "KERASTUNER_TUNER_ID": str(tuner_id),
        "KERASTUNER_ORACLE_IP": HOST,
        "KERASTUNER_ORACLE_PORT": str(port),
    }


def process_env(
    base: Mapping[str, str] | None = None,
    *,
    tf_config: str | None = None,
    tuner: Mapping[str, str] | None = None,
    pythonpath: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of one process of a local cluster: ``base`` (default
    ``os.environ``) without inherited cluster variables, with one TensorFlow
    op thread, the TensorFlow backend, loopback outside any proxy, then
    ``tf_config`` (``TF_CONFIG``), ``tuner`` (:func:`tuner_variables`),
    ``pythonpath`` and ``extra`` variables.

    >>> process_env({}, tf_config=tf_config([2222], 0))["TF_NUM_INTRAOP_THREADS"]
    '1'
    """
    env = dict(os.environ if base is None else base)
    for name in CLUSTER_VARIABLES:
        env.pop(name, None)
    env.update(
        KERAS_BACKEND="tensorflow",
        TF_NUM_INTRAOP_THREADS="1",
        TF_NUM_INTEROP_THREADS="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        no_proxy=HOST,
        NO_PROXY=HOST,
    )
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    env.update(tuner or {})
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    env.update(extra)
    return env
