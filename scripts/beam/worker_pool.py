"""Beam's Python SDK worker pool, listening on loopback only (run by TFDV's interpreter, .venv-tfdv).

    python worker_pool.py --port PORT

The Spark executors of the local cluster (scripts/beam/cluster.py) ask it to start an SDK worker
(environment_type EXTERNAL); it starts each as a process of its own, as Beam's
``apache_beam.runners.worker.worker_pool_main`` does, which binds every interface instead. Each
worker's output goes to this process's log, with its exit status (Beam's pool leaves it in a pipe
nobody reads), and StopWorker stops nothing (see WorkerPool).
"""

import argparse
import sys
import threading

import grpc
from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc
from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer
from apache_beam.utils import thread_pool_executor


class WorkerPool(BeamFnExternalWorkerPoolServicer):
    """Beam's worker pool, with each worker's output copied to the log and its exit status said there,
    and no worker stopped by its id.

    Each Spark executor numbers its SDK workers from "1-1", so two executors sharing this pool ask for
    the same id; Beam's pool keeps one process per id and stops that one on StopWorker, which can be
    the other executor's worker, before it has even connected: that executor then waits for it for
    ever. A worker ends by itself when its executor closes its control channel (its status 0 in the
    log); those still running when the pool stops go with its process group.
    """

    _starting = threading.Lock()  # two executors' StartWorker with one id must not swap their processes

    def StartWorker(self, request, context):  # noqa: N802 - the gRPC method's name
        with self._starting:
            response = super().StartWorker(request, context)
            process = self._worker_processes.pop(request.worker_id, None)
        if process is not None:
            threading.Thread(target=_follow, args=(request.worker_id, process), daemon=True).start()
        return response

    def StopWorker(self, request, context):  # noqa: N802 - the gRPC method's name
        print(f"[worker {request.worker_id}] stop asked (it ends when its executor closes it)", file=sys.stderr)
        return beam_fn_api_pb2.StopWorkerResponse()


def _follow(worker_id, process) -> None:
    for line in process.stdout:
        sys.stderr.write(f"[worker {worker_id}] {line.decode(errors='replace')}")
    print(f"[worker {worker_id}] exited with status {process.wait()}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    # As worker_pool_main: the executors' keepalive pings must not close the connection.
    options = [("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)]
    server = grpc.server(thread_pool_executor.shared_unbounded_instance(), options=options)
    server.add_insecure_port(f"127.0.0.1:{port}")
    pool = WorkerPool(use_process=True, data_buffer_time_limit_ms=-1)
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.start()
    print(f"worker pool listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
