#!/usr/bin/env python3
"""Innocent deadline churn through Python grpcio, on ONE channel: `--churners` threads
call StartExecution with a `--deadline-ms` deadline (most of them expire, and the client
resets their streams), while `--readers` threads call GetExecution with no deadline.
Runs for `--seconds`, then prints one JSON object: the readers' calls and failures by
code, and the churners' outcomes by code.

    deadline_churn.py ADDR PROTO_ROOT [--churners 50] [--readers 10] [--seconds 10]
                      [--deadline-ms 10] [--compression gzip]

Stubs are generated from PROTO_ROOT into a temporary folder with grpcio-tools.
"""

import argparse
import collections
import importlib
import json
import os
import sys
import tempfile
import threading
import time


def stubs(proto_root):
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="executions_stubs_")
    proto = os.path.join("workflow", "executions", "v1", "executions.proto")
    code = protoc.main(
        [
            "protoc",
            f"-I{proto_root}",
            f"-I{os.path.join(os.path.dirname(protoc.__file__), '_proto')}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            os.path.join(proto_root, proto),
        ]
    )
    if code != 0:
        sys.exit(f"protoc failed: {code}")
    sys.path.insert(0, out)
    pb = importlib.import_module("workflow.executions.v1.executions_pb2")
    rpc = importlib.import_module("workflow.executions.v1.executions_pb2_grpc")
    return pb, rpc


def main():
    import grpc

    parser = argparse.ArgumentParser()
    parser.add_argument("addr")
    parser.add_argument("proto_root")
    parser.add_argument("--churners", type=int, default=50)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--deadline-ms", type=float, default=10)
    parser.add_argument("--compression", choices=["gzip"], default=None)
    args = parser.parse_args()

    pb, rpc = stubs(args.proto_root)
    compression = grpc.Compression.Gzip if args.compression == "gzip" else None
    channel = grpc.insecure_channel(args.addr, compression=compression)
    client = rpc.ExecutionServiceStub(channel)
    template = pb.Template(
        nodes=[
            pb.Node(id="start_of_workflow", type="Start", name="Start"),
            pb.Node(id="a1", type="Http", name="A1"),
        ],
        edges=[pb.Edge(source="start_of_workflow", target="a1")],
    )
    seed = client.StartExecution(pb.StartExecutionRequest(key="churn", template=template))
    stop_at = time.monotonic() + args.seconds
    lock = threading.Lock()
    readers = collections.Counter()
    churners = collections.Counter()

    def read():
        while time.monotonic() < stop_at:
            try:
                client.GetExecution(pb.GetExecutionRequest(id=seed.id))
                code = "OK"
            except grpc.RpcError as err:
                code = f"{err.code().name}: {err.details()}"
            with lock:
                readers[code] += 1

    def churn():
        while time.monotonic() < stop_at:
            try:
                client.StartExecution(
                    pb.StartExecutionRequest(key="churn", template=template),
                    timeout=args.deadline_ms / 1000,
                )
                code = "OK"
            except grpc.RpcError as err:
                code = err.code().name
            with lock:
                churners[code] += 1

    threads = [threading.Thread(target=read) for _ in range(args.readers)]
    threads += [threading.Thread(target=churn) for _ in range(args.churners)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = {code: n for code, n in readers.items() if code != "OK"}
    print(
        json.dumps(
            {
                "reader_calls": sum(readers.values()),
                "reader_failures": failed,
                "churner_outcomes": dict(churners),
            }
        )
    )


if __name__ == "__main__":
    main()
