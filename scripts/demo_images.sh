#!/usr/bin/env bash
# The image demo (`make demo-images`): real package photos -> .beton -> MoCo v2 (ResNet-18, small
# resolution) on the CPU for a few epochs -> TensorBoard logs and checkpoints.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${DEMO_DIR:-demo_out}
rm -rf "$OUT"
$PY scripts/demo_images.py "$OUT/images"
$PY writers/write_images.py "$OUT/images/train" "$OUT/train.beton" --max-resolution 256 --workers 2
$PY writers/write_images.py "$OUT/images/val" "$OUT/val.beton" --max-resolution 256 --workers 2
$PY train.py --config-file configs/demo_cpu.yaml \
    --data.path="$OUT/train.beton" --train.run_dir="$OUT/run" \
    --logging.knn_train_path="$OUT/train.beton" --logging.knn_val_path="$OUT/val.beton"
echo
echo "Demo finished. TensorBoard: .venv/bin/tensorboard --logdir $OUT/run"
echo "Checkpoints and resolved config: $OUT/run/"
