#!/usr/bin/env bash
# The image demo (`make demo-images`): real package photos cut into tiles, some held out ->
# .beton -> MoCo v2 (ResNet-18 at 64 px) on the CPU -> what it learnt (loss against chance,
# the held-out monitor) -> TensorBoard logs and checkpoints. docs/demo.md explains it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${DEMO_DIR:-demo_out}
RECIPE=configs/demo_cpu.yaml     # the run's recipe; the monitor's queries augment as it does
rm -rf "$OUT"
$PY scripts/demo_images.py "$OUT/images" "$RECIPE"
# The training tiles, labelled by photo, are also the monitor's kNN bank.
for part in train queries; do
    $PY writers/write_images.py "$OUT/images/$part" "$OUT/$part.beton" \
        --max-resolution 256 --workers 2
done
$PY train.py --config-file "$RECIPE" \
    --data.path="$OUT/train.beton" --train.run_dir="$OUT/run" \
    --logging.knn_train_path="$OUT/train.beton" --logging.knn_val_path="$OUT/queries.beton"
echo "== what the run learnt"
$PY scripts/demo_summary.py "$OUT/run" --classes "$(ls "$OUT/images/train" | wc -l)" || true
echo
echo "Demo finished. TensorBoard: .venv/bin/tensorboard --logdir $OUT/run"
echo "Checkpoints and resolved config: $OUT/run/"
