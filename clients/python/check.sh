#!/usr/bin/env bash
# Generates the Python stubs from proto/ and runs clients/python/quickstart.py against a
# real server (the debug binary, on a fresh SQLite file and a free port). CI runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

mkdir -p "$work/stubs"
python3 -m grpc_tools.protoc -I proto --python_out="$work/stubs" \
  --grpc_python_out="$work/stubs" --pyi_out="$work/stubs" \
  proto/workflow/executions/v1/executions.proto

cargo build --quiet --bin executions
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUST_LOG=warn target/debug/executions serve --listen "127.0.0.1:$port" \
  --database-url "sqlite://$work/quickstart.db" &
server=$!
for _ in $(seq 50); do
  target/debug/executions count --addr "127.0.0.1:$port" >/dev/null 2>&1 && break
  sleep 0.2
done
python3 clients/python/quickstart.py --stubs "$work/stubs" --addr "127.0.0.1:$port"
