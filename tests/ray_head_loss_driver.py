"""``python -m features.extract`` (or ``classifiers.grid``, when the args hold ``--features``) as a
separate driver whose head node is taken away mid-run (for tests/test_ray_cluster.py; not a test module).
Grid mode: when the first grid computation starts, MARKER is created and the driver waits until the head
stops answering, so the computation meets a cluster without its head.

``python tests/ray_head_loss_driver.py MARKER NODE -- EXTRACT ARGS``: joins the cluster of the args'
``--address`` through the node named NODE (all the simulated nodes share one IP, and a driver would
otherwise attach to the head's and die with it, as a driver on the head's machine does), then runs the
extraction; after its first saved chunk it creates MARKER and waits (at most 60 s) until the head's GCS
stops answering (the test then removes the head), so that the rest of the run meets a cluster without
its head. Chunks are one batch each (more chunks than the two workers hold at once) and the head's
grace is 3 s. Exits with extraction's status.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main(argv) -> int:
    marker, node, args = Path(argv[0]), argv[1], argv[argv.index("--") + 1:]
    import ray
    import ray._private.services as services

    from toolkit.ray import REPO
    pick = services.get_node_to_connect_for_driver  # ray.init takes no node name when joining a cluster

    def node_named(gcs_client, node_ip_address=None, node_name=None, temp_dir=None, **kw):
        return pick(gcs_client, node_ip_address, node, temp_dir, **kw)

    services.get_node_to_connect_for_driver = node_named
    ray.init(address=args[args.index("--address") + 1], _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}})
    from toolkit import ray as ray_helpers
    from toolkit.ray import gcs_address, head_reachable
    ray_helpers.HEAD_GRACE_S = 3.0  # the test need not wait the usual 10 s

    def head_goes():
        if not marker.exists():
            address = gcs_address(ray)
            marker.write_text(address)
            deadline = time.monotonic() + 60
            while head_reachable(address) and time.monotonic() < deadline:
                time.sleep(0.2)

    if "--features" in args:
        from classifiers import grid
        real_evaluate = grid.evaluate

        def evaluate(*a, **kw):
            head_goes()
            return real_evaluate(*a, **kw)

        grid.evaluate = evaluate
        return grid.main(args)
    from features import extract
    from features.store import Chunks
    extract.CHUNK_BATCHES = 1  # one batch a chunk: more chunks than the workers hold at once
    real = Chunks.save

    def save(self, c, *a, **kw):
        real(self, c, *a, **kw)
        head_goes()

    Chunks.save = save
    return extract.main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
