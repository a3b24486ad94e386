#!/usr/bin/env python3
"""What a default Python grpcio client sees when its request carries huge values that
the server refuses: one JSON object on stdout, for each call its code, the message's
length and whether the google.rpc.Status details came through.

    long_echo.py ADDR PROTO_ROOT

A server that echoed such values whole would make grpcio fail with RESOURCE_EXHAUSTED
("metadata size exceeds hard limit") and lose the ErrorInfo.
"""

import json
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from deadline_churn import stubs  # noqa: E402


def main():
    import grpc

    addr, proto_root = sys.argv[1], sys.argv[2]
    pb, rpc = stubs(proto_root)
    client = rpc.ExecutionServiceStub(grpc.insecure_channel(addr))
    template = pb.Template(
        nodes=[
            pb.Node(id="start_of_workflow", type="Start", name="Start"),
            pb.Node(id="a1", type="Http", name="A1"),
        ],
        edges=[
            pb.Edge(source="start_of_workflow", target="a1"),
            pb.Edge(source="s" * 100_000, target="a1"),
        ],
    )
    calls = {
        "time_zone": lambda: client.GetExecution(
            pb.GetExecutionRequest(id="aaaaa", time_zone="Z" * 100_000)
        ),
        "edge_source": lambda: client.StartExecution(
            pb.StartExecutionRequest(key="echo", template=template)
        ),
    }
    seen = {}
    for name, call in calls.items():
        try:
            call()
            seen[name] = {"code": "OK"}
        except grpc.RpcError as err:
            trailers = dict(err.trailing_metadata() or ())
            seen[name] = {
                "code": err.code().name,
                "message_len": len(err.details() or ""),
                "details": "grpc-status-details-bin" in trailers,
            }
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
