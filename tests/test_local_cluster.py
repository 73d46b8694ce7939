"""keras_lottery.local_cluster: the environment of local cluster processes."""

import json

import pytest

from keras_lottery import local_cluster


def test_free_ports_are_distinct_and_bindable():
    import socket

    ports = local_cluster.free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        local_cluster.free_ports(0)


def test_tf_config_names_the_worker_of_a_loopback_cluster():
    config = json.loads(local_cluster.tf_config([2222, 2223], 1))
    assert config == {
        "cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},
        "task": {"type": "worker", "index": 1},
    }
    with pytest.raises(ValueError, match=r"index must be in \[0, 2\)"):
        local_cluster.tf_config([2222, 2223], 2)


def test_process_env_drops_inherited_cluster_roles():
    parent = {
        "PATH": "/bin",
        "TF_CONFIG": "{}",
        "KERASTUNER_TUNER_ID": "chief",
        "TF_NUM_INTRAOP_THREADS": "8",
    }
    env = local_cluster.process_env(parent)
    assert "TF_CONFIG" not in env and "KERASTUNER_TUNER_ID" not in env
    assert env["PATH"] == "/bin" and env["TF_NUM_INTRAOP_THREADS"] == "1"
    assert env["NO_PROXY"] == env["no_proxy"] == "127.0.0.1"
    assert parent["TF_CONFIG"] == "{}"  # the parent's mapping is untouched

    worker = local_cluster.process_env(
        parent,
        tuner=local_cluster.tuner_variables("worker1", 8000),
        pythonpath="/repo",
        EXTRA="x",
    )
    assert worker["KERASTUNER_TUNER_ID"] == "worker1"
    assert worker["KERASTUNER_ORACLE_PORT"] == "8000"
    assert worker["PYTHONPATH"] == "/repo" and worker["EXTRA"] == "x"
    config = local_cluster.tf_config([2222], 0)
    assert local_cluster.process_env(parent, tf_config=config)["TF_CONFIG"] == config
