"""Write the frames of videos (files or frame folders) to an FFCV ``.beton`` plus a sidecar.

    python writers/write_video_frames.py SRC OUT.beton [--stride 1] [--max-resolution 512]
        [--jpeg-quality 90] [--workers N] [--max-frames-per-video N] [--strict] [--shard I/N]
        [--segment-frames 120]

SRC is a video file, a folder of videos, or a folder of frame-sequence folders (GOT-10k /
TrackingNet layout), searched recursively. One sample per kept frame: ``image``
(``RGBImageField``, JPEG), ``video_id``, ``frame_index`` and ``label`` (``IntField``s;
``label`` = ``video_id``, so loaders that read ``label`` work unchanged). ``OUT.beton.json``
maps video ids to their sources. Videos are decoded in parallel (one process per video, or
per segment of a long one: :mod:`writers.video_segments`) with a progress bar over frames;
unreadable videos are skipped and listed (fatal with ``--strict``). ``--shard I/N`` writes
one shard of SRC's videos (``merge_betons.py`` joins the shards). Nothing is left under OUT
unless the whole write succeeds.
:func:`write_video_frames` is the library entry point.
"""
import os

import numpy as np

from fastssl_common.atomic import stop_signals_held
from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError, path_argument, run_cli
from fastssl_common.formats import FRAME_INDEX, IMAGE, LABEL, VIDEO_FRAMES, VIDEO_ID
from fastssl_common.locks import held_output
from fastssl_common.numbers import check_flag, check_number
from writers.shards import check_shard, print_shard, select_shard
from writers.spool import IMAGE_REF, Spool, spool_folder, write_spooled
from writers.video_common import joined_warnings, read_video
from writers.video_options import (
    add_common_arguments,
    common_options,
    nothing_written,
    print_problems,
    video_listing,
)
from writers.video_segments import SEGMENT_FRAMES, check_segment_frames, read_in_segments
from writers.video_source import find_videos
from writers.writer_common import check_output, print_output, write_outputs

_FRAME_RECORD = np.dtype([('index', '<i8'), ('timestamp', '<f8'), ('spool', '<i8'),
                          ('offset', '<i8'), ('nbytes', '<i8'), ('height', '<i4'),
                          ('width', '<i4')])


def write_video_frames(src, out, *, stride=1, max_resolution=512, jpeg_quality=90,
                       workers=None, max_frames_per_video=None, strict=False, shard=None,
                       segment_frames=SEGMENT_FRAMES, progress=None):
    """Write the frames of the videos in ``src`` to ``out`` and ``out + '.json'``.

    Keeps frames whose index is a multiple of ``stride``, at most ``max_frames_per_video`` per
    video (None: all), longest side at most ``max_resolution`` (0: no cap); ``shard``
    ('I/N' or (I, N)) keeps the videos of that shard only (None: all); ``segment_frames``
    (N) reads long videos as segments of at least N frames (0: each in one task, the same
    file either way: :mod:`writers.video_segments`). Returns a summary
    dict: ``out``, ``sidecar``, ``num_samples``, ``videos`` (the sidecar's table),
    ``skipped`` ([{path, reason}]), ``warnings`` ([{path, message}]), ``frames_read``,
    ``shard`` (the sidecar's entry, None without a shard) and ``options``. Raises UserError
    for bad input; on failure neither file is created. Paths may be str or ``pathlib.Path``.
    """
    src, out = path_argument(src, 'src'), path_argument(out, 'out')
    options = dict(common_options(max_resolution, jpeg_quality, workers, strict),
                   stride=check_number(stride, '--stride', 1),
                   max_frames_per_video=check_number(max_frames_per_video or 0,
                                                     '--max-frames-per-video', 1,
                                                     zero='no cap') or None,
                   segment_frames=check_segment_frames(segment_frames))
    shard = check_shard(shard)
    progress = check_flag(progress, 'progress', unset=True)
    out = check_output(out, src)
    listed = find_videos(src)
    sources, shard_entry = select_shard(listed, shard, src, 'video',
                                         video_listing(listed, src))
    with held_output(out), spool_folder(out) as spool_dir:
        jobs, results = _read_videos(sources, options, spool_dir, progress)
        videos, skipped, problems, refs = [], [], [], []
        video_ids, frame_indices, first_sample = [], [], 0
        for source, result in zip(sources, results):
            path = source.path
            if result['error']:
                if strict:
                    raise UserError(f"video {path}: {result['error']} (--strict)")
                skipped.append({'path': os.path.abspath(path), 'reason': result['error']})
                continue
            for message in result['warnings']:
                if strict:
                    raise UserError(f'video {path}: {message} (--strict)')
                problems.append({'path': os.path.abspath(path), 'message': message})
            frames = result['frames']
            video_id = len(videos)
            ref = np.zeros(len(frames), IMAGE_REF)
            for name in ('spool', 'offset', 'nbytes', 'height', 'width'):
                ref[name] = frames[name]
            refs.append(ref)
            video_ids.append(np.full(len(frames), video_id, np.int64))
            frame_indices.append(frames['index'])
            videos.append(dict(result['info'], id=video_id,
                               first_sample=first_sample,
                               num_samples=len(frames), frames_read=result['frames_read'],
                               stored_size=[int(frames['width'][0]), int(frames['height'][0])],
                               warnings=result['warnings']))
            first_sample += len(frames)
        if not videos:
            raise UserError(nothing_written('no readable video frames', src, skipped, shard))

        with stop_signals_held():   # slow import (Numba): only here; held as write_images's
            from ffcv.fields import IntField, RGBImageField

        fields = {IMAGE: RGBImageField(write_mode='jpg',
                                       max_resolution=options['max_resolution'] or None,
                                       jpeg_quality=options['jpeg_quality']),
                  VIDEO_ID: IntField(), FRAME_INDEX: IntField(), LABEL: IntField()}
        ids = np.concatenate(video_ids)
        columns = {IMAGE: np.concatenate(refs), VIDEO_ID: ids,
                   FRAME_INDEX: np.concatenate(frame_indices), LABEL: ids}
        num_samples = len(ids)
        metadata = {'format': VIDEO_FRAMES.sidecar, 'num_samples': num_samples,
                    'fields': VIDEO_FRAMES.fields_doc(),
                    'videos': videos, 'skipped': skipped, 'warnings': problems,
                    'frames_read': int(sum(r['frames_read'] for r in results if r)),
                    'options': dict(options, src=os.path.abspath(src))}
        if shard_entry is not None:
            metadata['shard'] = shard_entry
        sidecar = write_outputs(out, lambda tmp: write_spooled(
            tmp, fields, columns, [job[2] for job in jobs]), metadata, progress)
    return dict(out=out, sidecar=sidecar, num_samples=num_samples, videos=videos,
                skipped=skipped, warnings=problems, frames_read=metadata['frames_read'],
                shard=shard_entry, options=metadata['options'])


def _read_videos(sources, options, spool_dir, progress):
    """``(jobs, results)``: the pool's tasks and one result per source, long videos read as
    segments (:mod:`writers.video_segments`) and their frames joined."""
    def make_job(number, segment, job_number, threads):
        return (sources[number], dict(options, threads=threads),
                os.path.join(spool_dir, f'{job_number}.jpgs'), job_number, segment)

    jobs, parts = read_in_segments(_read_video, sources, make_job, options,
                                   lambda source: _frames_to_read(source, options), progress)
    results = []
    for video in parts:
        result = dict(video[0][1])
        result['warnings'] = joined_warnings([r for _, r in video])
        result['frames'] = np.concatenate([r['frames'] for _, r in video])
        result['frames_read'] = sum(r['frames_read'] for _, r in video)
        if result['error'] is None and not len(result['frames']):
            result['error'] = 'no frames could be decoded'
        results.append(result)
    return jobs, results


def _frames_to_read(source, options):
    """How many frames of ``source`` one read decodes to keep ``--max-frames-per-video`` of
    them (every ``--stride``-th index; None: all)."""
    cap, stride = options['max_frames_per_video'], options['stride']
    if not cap:
        return None
    if source.kind != 'frames':         # frame i has index i
        return (cap - 1) * stride + 1
    kept = [position for position, (index, _) in enumerate(source.frame_files)
            if index % stride == 0]
    return kept[cap - 1] + 1 if len(kept) >= cap else None


def _read_video(job, died=None):
    """Pool task: decode one video (or its segment), spool its kept frames. Never raises for
    bad input. ``died``: why the task's process died; nothing is read."""
    source, options, spool_path, spool_number, segment = job
    result = {'error': None, 'warnings': [], 'frames': None, 'frames_read': 0, 'info': None}
    records = []
    if died is not None:
        return dict(result, error=died, died=True, frames=np.array(records, _FRAME_RECORD))

    def read(reader, counter):
        estimate = reader.estimated_frames()
        if estimate is not None and options['max_frames_per_video']:
            estimate = min(estimate, options['max_frames_per_video'] * options['stride'])
        if segment is not None:
            end = (estimate or 0) if segment.stop is None else segment.stop
            estimate = max(0, end - segment.start)
        counter.expect(estimate or 0)
        seen = 0
        # a segment's frames are all it keeps: the plan stops the last one at the cap
        cap = options['max_frames_per_video'] if segment is None else None
        with Spool(spool_path, options['jpeg_quality']) as spool:
            for frame in reader.frames(options['stride'], cap, options['max_resolution'],
                                       segment):
                records.append((frame.index, frame.timestamp, spool_number)
                               + spool.add(frame.rgb))
                counter.count(reader.decoded - seen)
                seen = reader.decoded
        counter.count(reader.decoded - seen)
        result['frames_read'] = reader.decoded

    read_video(source, options['threads'], result, read)
    result['frames'] = np.array(records, _FRAME_RECORD)
    return result


# ---------------------------------------------------------------------------- CLI

def build_parser():
    parser = ArgParser(prog='write_video_frames.py', description=(
        'Write the frames of video files or frame folders (GOT-10k / TrackingNet layout) to an '
        'FFCV .beton (and OUT.beton.json with the video table).'))
    parser.add_argument('--stride', type=int, default=1,
                        help='keep frames whose index is a multiple of this (default 1)')
    parser.add_argument('--max-frames-per-video', type=int, default=0,
                        help='keep at most this many frames per video, 0 for all (default 0)')
    add_common_arguments(parser)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    replacing = os.path.exists(args.out)
    summary = write_video_frames(
        args.src, args.out, stride=args.stride, max_resolution=args.max_resolution,
        jpeg_quality=args.jpeg_quality, workers=args.workers,
        max_frames_per_video=args.max_frames_per_video, strict=args.strict, shard=args.shard,
        segment_frames=args.segment_frames)
    print_problems(summary)
    print_shard(summary['shard'], 'video')
    print(f"videos: {len(summary['videos'])} written, {len(summary['skipped'])} skipped")
    print(f"frames read: {summary['frames_read']}")
    print(f"samples written: {summary['num_samples']}")
    print_output(summary, replacing)
    return 0


def cli():
    """The console entry point: ``main`` on the command line's arguments, a user error as one
    line and exit status 2 (:func:`fastssl_common.errors.run_cli`)."""
    run_cli(main, stop_on_sigterm=True)


if __name__ == '__main__':
    cli()
