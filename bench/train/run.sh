#!/usr/bin/env bash
# Builds archc and compares its training throughput with PyTorch's (see train_bench.py). Uses
# the venv of bench/peers (run.sh there makes it), or PEERS_VENV.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${PEERS_VENV:-bench/peers/.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch torchvision safetensors numpy
fi
cargo build --release --quiet
exec "$venv/bin/python" bench/train/train_bench.py "$@"
