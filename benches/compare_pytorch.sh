#!/usr/bin/env bash
# rewind's training step against PyTorch's on this machine, side by side.
#
#   benches/compare_pytorch.sh [compare_pytorch.py options]
#   e.g. benches/compare_pytorch.sh --sizes quickstart --threads 1
#        benches/compare_pytorch.sh --bench generate   # cached generation, tokens/s
#
# 1. creates .venv (gitignored) and installs torch into it if missing
#    (`pip install torch`: PyTorch 2.x, a ~540 MB wheel, ~70 s; CPU is used);
# 2. builds rewind in release mode;
# 3. runs benches/compare_pytorch.py, which times `rewind bench train-step`
#    and the same model and step in PyTorch for each size and thread count
#    and prints a Markdown table (medians, ratio, share of peak FLOP/s).
#
# Timings on a shared machine are noisy: run it when the machine is idle,
# or twice, and report the range.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet torch numpy
fi
cargo build --release --locked --bin rewind
exec "$VENV/bin/python" benches/compare_pytorch.py --rewind "${CARGO_TARGET_DIR:-target}/release/rewind" "$@"
