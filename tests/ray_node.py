"""A Ray worker node in its own process, for the cluster tests (``python tests/ray_node.py GCS RESOURCES``).

``ray.cluster_utils.Cluster`` starts every node from the test process, so they all see its files. The
test of a node that cannot see the data starts this one instead, under ``unshare -m`` with the data and
the cache covered by empty mounts: a node that, like a machine without the shared storage, has not got
them. It joins the cluster at the GCS address given (loopback only), prints ``ready`` and stays up until
SIGTERM, then stops its processes. Not a test module (no ``test_`` prefix).
"""
from __future__ import annotations

import json
import signal
import sys
import time


def main(gcs: str, resources: str) -> None:
    import ray._private.node
    import ray._private.parameter

    params = ray._private.parameter.RayParams(
        gcs_address=gcs, node_ip_address="127.0.0.1", num_cpus=1, num_gpus=0, resources=json.loads(resources),
        object_store_memory=80 * 2**20, min_worker_port=0, max_worker_port=0, node_manager_port=0,
        include_log_monitor=False)
    params.dashboard_agent_listen_port = None  # as Cluster.add_node: not the head's port
    node = ray._private.node.Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("ready", flush=True)
    while not stop:
        time.sleep(0.2)
    node.kill_all_processes(check_alive=False, allow_graceful=True, wait=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
