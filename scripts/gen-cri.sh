#!/usr/bin/env bash
# Regenerates the CRI Python stubs (pyk8s/cri/api_pb2.py, api_pb2_grpc.py, api_pb2.pyi)
# from pyk8s/cri/api.proto. The proto is compiled from the repository root with
# its package path, so the gRPC stub imports `from pyk8s.cri import api_pb2`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
"$PYTHON" -m grpc_tools.protoc -I . \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  pyk8s/cri/api.proto
echo "gen-cri: regenerated pyk8s/cri/api_pb2{,_grpc}.py and api_pb2.pyi"
