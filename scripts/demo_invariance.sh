#!/usr/bin/env bash
# The demo's last step: the invariance of the demo's checkpoints on rendered data (objects
# textured with real photographs under known viewpoint, light direction, light colour,
# occlusion and instance changes), as a table, a JSON file, a curve plot and TensorBoard runs.
#   usage: scripts/demo_invariance.sh CHECKPOINT [CHECKPOINT ...]   (each PATH or NAME=PATH)
# Output under $DEMO_DIR (default demo_out): rendered_sets/, invariance.json,
# invariance_curves.png, runs/invariance/<checkpoint>/. Each score has its 95 % interval and
# the random_init row is the untrained ResNet (docs/evaluation.md); top-10 only, so that a
# table of four magnitudes with intervals fits a terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${DEMO_DIR:-demo_out}
if [ $# -lt 1 ]; then
    echo "error: usage: scripts/demo_invariance.sh CHECKPOINT [CHECKPOINT ...]" >&2
    exit 2
fi
CHECKPOINTS=$(IFS=,; echo "$*")
# 24 objects: enough images per set level that the top 5 % firing images are not one set's.
$PY writers/render_invariance_sets.py "$OUT/rendered_sets" --overwrite --objects 24 \
    --instances 4 --per-set 3 --size 64 --seed 0
$PY eval.py invariance --invariance.kind=rendered --invariance.root="$OUT/rendered_sets" \
    --invariance.checkpoints="$CHECKPOINTS" --invariance.top_k=10 \
    --invariance.output="$OUT/invariance.json" \
    --invariance.plot="$OUT/invariance_curves.png" --invariance.run_dir="$OUT/runs/invariance"
