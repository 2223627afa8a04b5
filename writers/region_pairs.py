"""Tracked region proposals of frame pairs: what the pairs writer stores in ``proposals``.

**Contract of the stored fields** (``write_video_pairs.py --proposals N``; read by loaders):

* ``proposals``: ``NDArrayField`` float32, shape ``(max_proposals, 9)`` (``--max-proposals``,
  default 32; ``N <= max_proposals``). Row ``r`` is one tracked region:
  ``[xa0, ya0, xa1, ya1, xb0, yb0, xb1, yb1, conf]`` where cols 0:4 (``BOX_A``) are its box
  in ``frame_a``, cols 4:8 (``BOX_B``) its box in ``frame_b``, col 8 (``CONF``) the track's
  confidence in (0, 1] (the names are :mod:`fastssl_common.formats`'s).
* ``num_proposals``: ``IntField``; rows ``[0, num_proposals)`` are valid, ordered by
  confidence (best first); rows beyond are zeros. ``0`` means no region survived tracking:
  the pair is still a full-frame (FTI) pair, the Region Tracker skips it.
* **Units**: pixels of the *stored* frames (after ``--max-resolution``), x to the right and y
  down from the top-left corner of the frame, ``x1``/``y1`` exclusive (a box covers
  ``[x0, x1) x [y0, y1)``, width ``x1 - x0``), floats. Both boxes lie inside their frame
  (``0 <= x0 < x1 <= width``, same for y) and every side is at least ``MIN_STORED_SIDE`` px.

**How the rows are made.** Every frame of a video is decoded once. Frames from a pair's first
frame to its second are shrunk to a longest side of ``track_side`` (default 320) for
tracking; on the first frame ``N`` proposals are found (:mod:`writers.proposals`: selective
search or ``--detector``), then tracked frame by frame through *every* frame in between to the
second frame (:mod:`writers.tracking`, median flow; all the tracks alive in a video share each
frame's optical-flow calls). With ``--proposal-ranking motion`` (the default) the proposals
of frame i are ranked by their motion from frame i to the next frame fed (dense flow between
the two, :func:`writers.proposals.dense_flow`), so they are found and their tracks start, at
frame i, when that next frame arrives. Lost tracks are dropped; the survivors' boxes are scaled from
tracking to stored pixels per axis (``stored size / tracking size``: both are the same frame,
shrunk) and the ``b`` box is cut to the frame. An unreadable frame in between (frame folders)
is skipped by the tracker, which then steps over two frames at once.

**Foreground share** (the quality figure of the summary, sidecar and ``inspect_pairs``): the
share of kept tracks that overlap *moving foreground*, judged by a reference independent of
the ranking: OpenCV's MOG2 background subtractor (``cv2.createBackgroundSubtractorMOG2``,
shadows off) fed every frame the tracker sees at half the tracking size, restarted at each
shot cut and at the first frame of each segment a long video is read in
(:mod:`writers.video_segments`). A kept track
overlaps the foreground when at least ``FOREGROUND_COVER`` of its boxes' pixels (box a in
the mask of frame a and box b in that of frame b, together) are foreground. Pairs whose first
frame comes before the subtractor has seen ``FOREGROUND_WARMUP`` frames (its first masks
mark everything) are not judged. The reference means "moving" only under a still camera: a
panning or shaking camera makes most of the frame foreground, and the share then says little.
"""
import multiprocessing
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

from fastssl_common.formats import BOX_A, BOX_B, CONF, NUM_COLUMNS
from writers.boxes import box_area, clip_boxes, mask_cover, scale_boxes
from writers.proposals import ProposalSettings, dense_flow, propose
from writers.tracking import MedianFlow, TrackerSettings

DEFAULT_TRACK_SIDE = 320
MIN_STORED_SIDE = 2.0
FOREGROUND_COVER = 0.1      # foreground fraction of a track's pixels that makes it "moving"
FOREGROUND_WARMUP = 10      # frames the background subtractor sees before its masks count
_DETECTORS = {}        # (path, arch, min_score) -> Detector, one load per process


@dataclass(frozen=True)
class RegionSettings:
    """What :class:`PairRegions` needs: proposal and tracker settings, tracking resolution,
    and the optional detector (path, architecture, minimum score)."""
    proposals: ProposalSettings = field(default_factory=ProposalSettings)
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    track_side: int = DEFAULT_TRACK_SIDE
    detector: str = None
    detector_arch: str = None
    detector_min_score: float = 0.5


def detector_for(settings):
    """The settings' detector (built once per process), or None for selective search."""
    if settings.detector is None:
        return None
    if multiprocessing.parent_process() is not None:
        import torch

        # a pool worker: one video per process, as OpenCV; and OpenMP thread teams do not
        # survive fork, so none may be started here
        torch.set_num_threads(1)
    from writers.detector import architecture_of, load_detector

    architecture = architecture_of(settings.detector, settings.detector_arch)
    key = (settings.detector, architecture, settings.detector_min_score)
    if key not in _DETECTORS:
        _DETECTORS[key] = load_detector(settings.detector, settings.detector_min_score,
                                        architecture)
    return _DETECTORS[key]


class PairRegions:
    """Proposals and tracks of one video's pairs; fed the video's frames in order.

    ``frame(rgb)`` for every frame from a pair's first frame to its second (at tracking
    resolution), ``begin(index)`` on a pair's first frame after its ``frame``,
    ``finish(index_a, ...)`` on its second frame (its rows to store appended to ``rows``),
    ``discard(index_a)`` for a pair that is dropped. ``stats`` counts what happened to the
    written pairs' tracks.
    """

    def __init__(self, settings):
        self.settings = settings
        self.detector = detector_for(settings)
        self.tracker = MedianFlow(settings.tracker)
        self.groups = {}                 # index_a -> (track ids, size (w, h), foreground at a)
        self._rgb = self._size = self._gray = None
        self._pending = None             # index_a whose proposals await the next frame's flow
        self._background = self._foreground = None
        self._seen = 0                   # frames the background subtractor has seen
        self.stats = new_stats()
        self.rows = []                   # each finished pair's rows, in the order finished

    @property
    def active(self):
        """True while some pair awaits its second frame."""
        return bool(self.groups) or self._pending is not None

    def frame(self, rgb):
        """The next frame (RGB, tracking resolution): every live track steps to it."""
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if self._pending is not None:
            flow = dense_flow(self._gray, gray) if gray.shape == self._gray.shape else None
            self._start(self._pending, flow)
        self.tracker.next_frame(gray)
        self._rgb, self._size, self._gray = rgb, (rgb.shape[1], rgb.shape[0]), gray
        if self._background is None:
            self._background = cv2.createBackgroundSubtractorMOG2(detectShadows=False)
        # at half size: a quarter of the cost, and a mask only judges boxes, not their edges
        half = cv2.resize(rgb, (max(1, rgb.shape[1] // 2), max(1, rgb.shape[0] // 2)),
                          interpolation=cv2.INTER_AREA)
        self._foreground = self._background.apply(half) > 0
        self._seen += 1

    def begin(self, index):
        """Find proposals on the current frame (pair first frame ``index``) and start tracks;
        with the motion ranking, once the next frame gives the flow."""
        if self.settings.proposals.ranking == 'motion':
            self._pending = index
        else:
            self._start(index, None)

    def _start(self, index, flow):
        """Proposals of the current frame (``flow`` to the next one, or None), tracks started.
        Without a flow (the next frame has another size) the motion ranking finds none."""
        self._pending = None
        if flow is None and self.settings.proposals.ranking == 'motion':
            boxes = np.zeros((0, 4))
        else:
            boxes, _ = propose(self._rgb, self.settings.proposals, self.detector, flow)
        judged = self._seen >= FOREGROUND_WARMUP
        self.groups[index] = (self.tracker.add(boxes), self._size,
                              self._foreground if judged else None)

    def discard(self, index):
        """Forget the tracks of the pair starting at ``index`` (it will not be written)."""
        if self._pending == index:
            self._pending = None
        group = self.groups.pop(index, None)
        if group is not None:
            self.tracker.finish(group[0])

    def discard_before(self, index):
        """Forget every pair starting before ``index`` (a shot cut at ``index``); the
        background subtractor starts again on the new shot."""
        for start in [a for a in self.groups if a < index]:
            self.discard(start)
        if self._pending is not None and self._pending < index:
            self._pending = None
        self._background, self._seen = None, 0

    def finish(self, index_a, stored_a, stored_b):
        """Append to ``rows`` the rows of the pair ``(index_a, current frame)``, float32
        ``k x 9`` (see the module docstring); ``stored_a``/``stored_b`` are the stored frames'
        (height, width)."""
        if self._pending == index_a:          # no frame in between gave the flow
            self._start(index_a, None)
        group = self.groups.pop(index_a, None)
        if group is None:                     # its first frame could not be thumbnailed
            self.rows.append(np.zeros((0, NUM_COLUMNS), np.float32))
            return
        ids, (width_a, height_a), foreground_a = group
        tracker = self.tracker
        tracker.finish(ids)
        start = tracker.start_boxes[ids]
        alive = tracker.alive(ids)
        confidence = tracker.confidence(ids)
        width_b, height_b = self._size
        box_a = scale_boxes(start, stored_a[1] / width_a, stored_a[0] / height_a)
        box_b = scale_boxes(clip_boxes(tracker.boxes[ids], width_b, height_b),
                            stored_b[1] / width_b, stored_b[0] / height_b)
        box_a = clip_boxes(box_a, stored_a[1], stored_a[0])
        sides = np.minimum(np.minimum(*(box_a[:, 2:] - box_a[:, :2]).T),
                           np.minimum(*(box_b[:, 2:] - box_b[:, :2]).T))
        too_small = alive & (sides < MIN_STORED_SIDE)
        kept = alive & ~too_small
        order = np.flatnonzero(kept)[np.argsort(-confidence[kept], kind='stable')]
        rows = np.zeros((len(order), NUM_COLUMNS), np.float32)
        rows[:, BOX_A], rows[:, BOX_B] = box_a[order], box_b[order]
        rows[:, CONF] = confidence[order]

        stats = self.stats
        stats['pairs'] += 1
        stats['pairs_with_tracks'] += bool(len(order))
        stats['proposals'] += len(ids)
        stats['tracks_kept'] += len(order)
        stats['frames_tracked'] += int(tracker.steps[ids].sum())
        stats['kept_frames_tracked'] += int(tracker.steps[ids[order]].sum())
        stats['lost'].update(r for r in tracker.reasons(ids) if r is not None)
        stats['lost']['too_small_stored'] += int(too_small.sum())
        if foreground_a is not None and foreground_a.shape == self._foreground.shape:
            kept_ids = ids[order]
            stats['foreground_judged'] += len(order)
            sx = self._foreground.shape[1] / width_b
            sy = self._foreground.shape[0] / height_b
            stats['foreground_tracks'] += int(np.sum(foreground_cover(
                scale_boxes(start[order], sx, sy), foreground_a,
                scale_boxes(tracker.boxes[kept_ids], sx, sy), self._foreground)
                >= FOREGROUND_COVER))
        self.rows.append(rows)


def load_compiled_code():
    """Load the tracker's compiled code into this process. The first compiled call of a
    process starts Numba (about 0.3 s); the pairs writer makes it before its pool forks, so
    the workers inherit it instead of each starting Numba again (the writer's own process
    starts it anyway when it writes the ``.beton``)."""
    frame = np.random.default_rng(0).integers(0, 256, (32, 32), np.uint8)
    tracker = MedianFlow()
    tracker.next_frame(frame)
    tracker.add([[4.0, 4.0, 28.0, 28.0]])
    tracker.next_frame(frame)


def foreground_cover(boxes_a, mask_a, boxes_b, mask_b):
    """Per track, the foreground fraction of its pixels: box a in ``mask_a`` and box b in
    ``mask_b`` together (boolean masks, boxes in their pixels, cut to them)."""
    height, width = mask_a.shape
    boxes_a, boxes_b = clip_boxes(boxes_a, width, height), clip_boxes(boxes_b, width, height)
    area_a, area_b = box_area(boxes_a), box_area(boxes_b)
    covered = mask_cover(boxes_a, mask_a) * area_a + mask_cover(boxes_b, mask_b) * area_b
    return np.where(area_a + area_b > 0, covered / np.maximum(area_a + area_b, 1e-9), 0.0)


def new_stats():
    """Zeroed track counts (summed over videos with :func:`add_stats`)."""
    return {'pairs': 0, 'pairs_with_tracks': 0, 'proposals': 0, 'tracks_kept': 0,
            'frames_tracked': 0, 'kept_frames_tracked': 0, 'foreground_judged': 0,
            'foreground_tracks': 0, 'lost': Counter()}


def add_stats(total, more):
    """Add the counts ``more`` into ``total``."""
    for key, value in more.items():
        total[key] = total[key] + value


def stats_summary(stats):
    """The JSON-able summary of track counts: the counts plus kept fraction, mean track
    lengths (frames followed per track; lost tracks count the frames before they were lost)
    and the foreground share (None when no kept track was judged)."""
    proposals, kept = stats['proposals'], stats['tracks_kept']
    judged = stats['foreground_judged']
    return {
        'pairs': stats['pairs'], 'pairs_with_tracks': stats['pairs_with_tracks'],
        'pairs_without_tracks': stats['pairs'] - stats['pairs_with_tracks'],
        'proposals': proposals, 'tracks_kept': kept,
        'kept_fraction': kept / proposals if proposals else 0.0,
        'mean_track_frames': stats['frames_tracked'] / proposals if proposals else 0.0,
        'mean_kept_track_frames': stats['kept_frames_tracked'] / kept if kept else 0.0,
        'lost': {reason: count for reason, count in sorted(stats['lost'].items()) if count},
        'foreground': {
            'share': stats['foreground_tracks'] / judged if judged else None,
            'tracks_judged': judged, 'tracks_on_foreground': stats['foreground_tracks'],
            'reference': 'OpenCV MOG2 background subtractor over the frames tracked, '
                         'restarted at shot cuts and segment starts',
            'min_cover': FOREGROUND_COVER, 'warmup_frames': FOREGROUND_WARMUP},
    }
