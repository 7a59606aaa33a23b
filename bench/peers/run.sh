#!/usr/bin/env bash
# Sets up bench/peers/.venv (torch + torchvision CPU, onnxruntime, OpenVINO, ncnn, pnnx) when it is
# missing, builds archc, and runs peers.py with the given flags (see `peers.py --help`).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${PEERS_VENV:-bench/peers/.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch torchvision onnx onnxruntime openvino ncnn pnnx safetensors numpy
fi
cargo build --release --quiet
exec "$venv/bin/python" bench/peers/peers.py "$@"
