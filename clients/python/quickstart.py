#!/usr/bin/env python3
"""A short Python client of the Executions API, on stubs generated with grpcio-tools.

It starts an execution of a template file (the JSON StartExecution takes, e.g.
examples/linear.json), watches it on a stream in another thread, drives every action to
COMPLETED as the workflow engine's workers would (each as soon as it is ready), waits for
the watch to end on COMPLETED, and then makes a call the server refuses, decoding the
google.rpc.ErrorInfo of the error. It prints what it saw as one JSON object and exits 0
when everything went as the API promises.

    python3 -m grpc_tools.protoc -I proto --python_out=gen/python \\
        --grpc_python_out=gen/python --pyi_out=gen/python \\
        proto/workflow/executions/v1/executions.proto
    python3 clients/python/quickstart.py --stubs gen/python --addr 127.0.0.1:50051

Needs grpcio, protobuf and grpcio-status (for the error details).
"""

import argparse
import json
import os
import sys
import threading


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--addr", default="127.0.0.1:50051")
    parser.add_argument("--stubs", default="gen/python", help="folder of the generated stubs")
    parser.add_argument(
        "--template", default=os.path.join(here, "..", "..", "examples", "linear.json")
    )
    args = parser.parse_args()
    sys.path.insert(0, args.stubs)

    import grpc
    from google.protobuf import json_format
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status
    from workflow.executions.v1 import executions_pb2 as pb
    from workflow.executions.v1 import executions_pb2_grpc as rpc

    channel = grpc.insecure_channel(args.addr)
    grpc.channel_ready_future(channel).result(timeout=10)
    stub = rpc.ExecutionServiceStub(channel)

    with open(args.template) as f:
        request = json_format.Parse(f.read(), pb.StartExecutionRequest())
    execution = stub.StartExecution(request, timeout=10)
    print(f"started {execution.hashid} ({execution.actions_count} actions)", file=sys.stderr)

    # Watch on a stream while this thread drives the actions.
    seen = []
    watching = threading.Event()

    def watch():
        stream = stub.WatchExecution(pb.WatchExecutionRequest(id=execution.id), timeout=60)
        for event in stream:
            watching.set()
            seen.append(event)

    watcher = threading.Thread(target=watch)
    watcher.start()
    watching.wait(timeout=10)

    incoming = {}
    for edge in execution.template.edges:
        incoming.setdefault(edge.target, []).append(edge.source)
    actions = [n.id for n in execution.template.nodes if n.type != "Start"]

    def ready(state, node):
        sources = incoming.get(node, [])
        return not sources or any(
            state.stats[f"{s}-{node}"].edge.status == pb.EDGE_STATUS_OPEN for s in sources
        )

    state = execution
    while state.status == pb.EXECUTION_STATUS_RUNNING:
        todo = [
            n
            for n in actions
            if state.stats[n].action.status == pb.ACTION_STATUS_IDLE and ready(state, n)
        ]
        if not todo:
            break
        for node in todo:
            for status in (pb.ACTION_STATUS_RUNNING, pb.ACTION_STATUS_COMPLETED):
                state = stub.UpdateAction(
                    pb.UpdateActionRequest(execution_id=execution.id, node_id=node, status=status),
                    timeout=10,
                )
    watcher.join(timeout=30)

    # A call the server refuses: stopping a finished execution.
    refused = {}
    try:
        stub.StopExecution(pb.StopExecutionRequest(id=execution.hashid), timeout=10)
    except grpc.RpcError as err:
        refused["code"] = err.code().name
        status = rpc_status.from_call(err)
        for detail in status.details if status else []:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                refused["domain"] = info.domain
                refused["reason"] = info.reason

    kinds = [pb.WatchEventKind.Name(e.kind) for e in seen]
    revisions = [e.revision for e in seen]
    final = seen[-1].execution if seen else None
    report = {
        "hashid": execution.hashid,
        "status": pb.ExecutionStatus.Name(state.status),
        "watched": kinds,
        "revisions": revisions,
        "watch_final_status": pb.ExecutionStatus.Name(final.status) if final else None,
        "watch_ended": not watcher.is_alive(),
        "error": refused,
    }
    print(json.dumps(report))
    ok = (
        state.status == pb.EXECUTION_STATUS_COMPLETED
        and kinds[:1] == ["WATCH_EVENT_KIND_SNAPSHOT"]
        and revisions == sorted(set(revisions))
        and final is not None
        and final.status == pb.EXECUTION_STATUS_COMPLETED
        and not watcher.is_alive()
        and refused.get("code") == "FAILED_PRECONDITION"
        and refused.get("domain") == "executions"
        and refused.get("reason") == "EXECUTION_ALREADY_FINISHED"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
