"""Median-flow tracking of many boxes at once over pyramidal Lucas-Kanade optical flow.

The tracker of Kalal et al. (*Forward-Backward Error*, ICPR 2010), vectorised over boxes:
frames are fed one at a time (:meth:`MedianFlow.next_frame`, greyscale, one size); boxes can
join at any frame (:meth:`MedianFlow.add`) and leave when the caller is done with them
(:meth:`MedianFlow.finish`). For each step from the previous frame to the new one:

1. every active box gets a ``grid x grid`` lattice of points (cell centres of the box);
2. the points of *all* boxes go through one forward ``cv2.calcOpticalFlowPyrLK`` call (previous
   -> new frame) and the points it found through one backward call (new -> previous), so the
   image pyramids are built once per frame and call, however many boxes there are;
3. a point is *followed* when the forward call found it (LK gives up on windows with too
   little texture and on points leaving the image), and *reliable* when it is followed, the
   backward call found it too, its forward-backward error (distance from the start to the
   back-tracked point) is at most ``max_fb`` px, and LK's own residual (mean absolute
   grey-level difference of the matched windows) is at most ``max_residual``;
4. the box moves by the median displacement and scales by the median ratio of pairwise point
   distances (new / old) of the better half of its reliable points (FB error at most their
   median, as in the original).

**Lost tracks** are dropped (their status says why, :data:`LOST_REASONS`): non-finite,
inverted or too small boxes at the start (``degenerate``); fewer than ``min_points`` grid
points followed, or fewer than ``min_reliable`` of the followed points reliable
(``unreliable``: the region vanished, was covered, or has no texture to follow); a median
forward-backward error above ``max_fb`` (``fb_error``); a scale change in one step beyond
``max_scale_step`` (``scale_jump``); less than ``min_visible`` of the box inside the frame
(``left_frame``); a side below ``min_side`` px (``collapsed``); or frames of a different size
(``frame_size``).

**Confidence** in [0, 1] of a track: the geometric mean over its steps of
``(reliable / followed points) * (1 - median FB error / max_fb)``, times the box's visible
fraction at the end (a track that never stepped has confidence 1 if its box is inside the frame).
Coordinates are pixels of the frames fed in, boxes ``x0, y0, x1, y1`` (see
:mod:`writers.boxes`).
"""
import math
from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

from writers.boxes import visible_fraction

ACTIVE, FINISHED = 0, 1
LOST_REASONS = {2: 'degenerate', 3: 'unreliable', 4: 'fb_error', 5: 'scale_jump',
                6: 'left_frame', 7: 'collapsed', 8: 'frame_size'}
_CODE = {name: code for code, name in LOST_REASONS.items()}
# the codes of a step's losses, as constants the compiled step can use
_CODE_SCALE_JUMP, _CODE_FB_ERROR, _CODE_UNRELIABLE, _CODE_COLLAPSED = (
    _CODE[name] for name in ('scale_jump', 'fb_error', 'unreliable', 'collapsed'))
_STATE = {'boxes': ((4,), np.float64), 'start_boxes': ((4,), np.float64),
          'status': ((), np.int8), 'steps': ((), np.int64), 'log_quality': ((), np.float64)}


@dataclass(frozen=True)
class TrackerSettings:
    """Median-flow parameters; pixel values are in the frames fed to the tracker."""
    grid: int = 8               # points per box side
    window: int = 9             # LK window side
    levels: int = 3             # pyramid levels above the frame
    iterations: int = 20        # LK iterations per level
    max_fb: float = 2.0         # px: largest forward-backward error of a reliable point
    max_residual: float = 24.0  # grey levels: largest LK residual of a reliable point
    min_reliable: float = 0.5   # fraction of the followed points
    min_points: int = 8         # followed points (of grid * grid)
    max_scale_step: float = 1.3
    min_visible: float = 0.5
    min_side: float = 4.0


class MedianFlow:
    """Track many boxes through a stream of greyscale frames (see the module docstring)."""

    def __init__(self, settings=TrackerSettings()):
        self.settings = settings
        self._frame = None
        # per-track state, grown by doubling (a long video adds tracks all the time)
        self._count = 0
        self._state = {name: np.zeros((16,) + shape, dtype) for name, (shape, dtype)
                       in _STATE.items()}

    boxes = property(lambda self: self._view('boxes'), doc='where each track is now')
    start_boxes = property(lambda self: self._view('start_boxes'), doc='where it started')
    status = property(lambda self: self._view('status'),
                      doc='ACTIVE, FINISHED or a LOST_REASONS code')
    steps = property(lambda self: self._view('steps'), doc='frames tracked so far')

    def _view(self, name):
        return self._state[name][:self._count]

    # ------------------------------------------------------------------ feeding
    def next_frame(self, gray):
        """Advance every active track from the previous frame to ``gray`` (uint8, H x W)."""
        gray = np.ascontiguousarray(gray, np.uint8)
        active = np.flatnonzero(self.status == ACTIVE)
        if self._frame is not None and len(active):
            if gray.shape != self._frame.shape:
                self.status[active] = _CODE['frame_size']
            else:
                self._step(active, self._frame, gray)
        self._frame = gray

    def add(self, boxes):
        """Start tracks at the current frame (the last one fed); returns their ids."""
        if self._frame is None:
            raise ValueError('feed a frame before adding boxes')
        boxes = np.array(boxes, np.float64).reshape(-1, 4)
        height, width = self._frame.shape
        with np.errstate(invalid='ignore'):
            sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            bad = ~(np.all(np.isfinite(boxes), axis=1) & (sides >= self.settings.min_side))
        bad |= visible_fraction(np.where(bad[:, None], 0, boxes), width, height) \
            < self.settings.min_visible
        ids = np.arange(self._count, self._count + len(boxes))
        needed = self._count + len(boxes)
        if needed > len(self._state['status']):
            capacity = max(needed, 2 * len(self._state['status']))
            for name, values in self._state.items():
                grown = np.zeros((capacity,) + values.shape[1:], values.dtype)
                grown[:self._count] = values[:self._count]
                self._state[name] = grown
        self._count = needed
        self.boxes[ids] = self.start_boxes[ids] = boxes
        self.status[ids] = np.where(bad, _CODE['degenerate'], ACTIVE)
        return ids

    def finish(self, ids):
        """Stop tracking ``ids`` (the caller has reached their last frame); lost ones stay lost."""
        ids = np.asarray(ids, np.int64)
        self.status[ids[self.status[ids] == ACTIVE]] = FINISHED

    # ------------------------------------------------------------------ results
    def alive(self, ids):
        """True for tracks not lost."""
        return self.status[np.asarray(ids, np.int64)] <= FINISHED

    def confidence(self, ids):
        """Confidence in [0, 1] of each track (0 for lost tracks)."""
        ids = np.asarray(ids, np.int64)
        mean_log = self._view('log_quality')[ids] / np.maximum(self.steps[ids], 1)
        height, width = self._frame.shape
        visible = visible_fraction(np.nan_to_num(self.boxes[ids]), width, height)
        return np.where(self.alive(ids), np.exp(mean_log) * visible, 0.0)

    def reasons(self, ids):
        """``None`` for live tracks, else the :data:`LOST_REASONS` name."""
        return [LOST_REASONS.get(int(code)) for code in self.status[np.asarray(ids, np.int64)]]

    # ------------------------------------------------------------------ one step
    def _step(self, active, previous, current):
        s = self.settings
        boxes = self.boxes[active]
        start = _grid_points(boxes, s.grid)
        lk = dict(winSize=(s.window, s.window), maxLevel=s.levels,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, s.iterations, 0.01))
        moved, found, residual = cv2.calcOpticalFlowPyrLK(
            previous, current, start.reshape(-1, 1, 2).astype(np.float32), None, **lk)
        # only the points found forward are tracked back (the others do not count either way,
        # and LK treats every point on its own, so the results are the same)
        followed = np.flatnonzero(found.ravel() == 1)
        back = np.full_like(moved, np.nan)
        found_back = np.zeros_like(found)
        if len(followed):
            back[followed], found_back[followed], _ = cv2.calcOpticalFlowPyrLK(
                current, previous, moved[followed], None, **lk)
        shape = start.shape[:2]
        height, width = current.shape
        new, lost, quality = _moved_boxes(
            boxes, start, moved.reshape(shape + (2,)), back.reshape(shape + (2,)),
            found.reshape(shape), found_back.reshape(shape), residual.reshape(shape),
            s.max_fb, s.max_residual, s.min_reliable, s.min_points,
            math.log(s.max_scale_step), s.min_side)
        lost[(lost == 0) & (visible_fraction(new, width, height) < s.min_visible)] = \
            _CODE['left_frame']
        ok = lost == 0
        self.boxes[active[ok]] = new[ok]
        self.steps[active[ok]] += 1
        self._view('log_quality')[active[ok]] += np.log(np.maximum(quality[ok], 1e-6))
        self.status[active[~ok]] = lost[~ok]


@njit(cache=True, nogil=True)
def _grid_points(boxes, grid):
    """``B x grid**2 x 2``: the cell centres of a ``grid x grid`` lattice in each box, row by
    row (x varies fastest)."""
    points = np.empty((len(boxes), grid * grid, 2))
    for box in range(len(boxes)):
        width, height = boxes[box, 2] - boxes[box, 0], boxes[box, 3] - boxes[box, 1]
        for row in range(grid):
            for column in range(grid):
                point = row * grid + column
                points[box, point, 0] = boxes[box, 0] + (column + 0.5) / grid * width
                points[box, point, 1] = boxes[box, 1] + (row + 0.5) / grid * height
    return points


@njit(cache=True, nogil=True, error_model='numpy')
def _moved_boxes(boxes, start, moved, back, found, found_back, residual, max_fb,
                 max_residual, min_reliable, min_points, max_log_scale, min_side):
    """One step of each box from its points (:func:`_point_statistics`): the moved boxes,
    the lost codes (0: tracked, the caller then checks the frame; where several apply,
    ``unreliable`` before ``fb_error`` before ``scale_jump``, then ``collapsed``) and each
    step's quality ``reliable fraction * (1 - median FB error / max_fb)``."""
    followed_count, reliable_fraction, median_fb, dx, dy, scale = _point_statistics(
        start, moved, back, found, found_back, residual, max_fb, max_residual)
    new = boxes.copy()
    lost = np.zeros(len(boxes), np.int8)
    quality = np.empty(len(boxes))
    for box in range(len(boxes)):
        code = 0
        if not np.isfinite(scale[box]) or abs(math.log(scale[box])) > max_log_scale:
            code = _CODE_SCALE_JUMP
        if not median_fb[box] <= max_fb:
            code = _CODE_FB_ERROR
        if reliable_fraction[box] < min_reliable or followed_count[box] < min_points:
            code = _CODE_UNRELIABLE
        quality[box] = reliable_fraction[box] * min(max(1 - median_fb[box] / max_fb, 0.0), 1.0)
        if code:
            lost[box] = code
            continue
        half_x = (boxes[box, 2] - boxes[box, 0]) / 2 * scale[box]
        half_y = (boxes[box, 3] - boxes[box, 1]) / 2 * scale[box]
        centre_x = (boxes[box, 0] + boxes[box, 2]) / 2 + dx[box]
        centre_y = (boxes[box, 1] + boxes[box, 3]) / 2 + dy[box]
        if min(2 * half_x, 2 * half_y) < min_side:
            lost[box] = _CODE_COLLAPSED
        new[box, 0], new[box, 1] = centre_x - half_x, centre_y - half_y
        new[box, 2], new[box, 3] = centre_x + half_x, centre_y + half_y
    return new, lost, quality


@njit(cache=True, nogil=True, error_model='numpy')
def _point_statistics(start, moved, back, found, found_back, residual, max_fb, max_residual):
    """Per box, from its grid points' start, forward and back-tracked positions (``B x P x 2``)
    and LK's found flags and residuals (``B x P``): the followed count, the reliable fraction
    of the followed points, the median FB error of the valid points, the median shift (dx,
    dy) and the median pairwise scale of the used points (the module docstring's steps 3-4;
    NaN where a median has no values). Compiled: as NumPy over the boxes' points it cost
    more than the two LK calls it follows."""
    boxes, points = found.shape
    followed_count = np.zeros(boxes, np.int64)
    reliable_fraction, median_fb = np.empty(boxes), np.empty(boxes)
    dx, dy, scale = np.empty(boxes), np.empty(boxes), np.empty(boxes)
    fb, valid_fb, reliable_fb = np.empty(points), np.empty(points), np.empty(points)
    shift_x, shift_y = np.empty(points), np.empty(points)
    reliable = np.zeros(points, np.bool_)
    used_points = np.empty(points, np.int64)
    ratios = np.empty(points * (points - 1) // 2)
    for box in range(boxes):
        followed = valid = used = 0
        for p in range(points):
            ex = np.float64(back[box, p, 0]) - start[box, p, 0]
            ey = np.float64(back[box, p, 1]) - start[box, p, 1]
            fb[p] = math.sqrt(ex * ex + ey * ey)
            reliable[p] = False
            # LK reports a point not found when its window has too little texture to follow
            # (or leaves the image): such points neither count for nor against the box
            if not (found[box, p] == 1 and np.isfinite(moved[box, p, 0])
                    and np.isfinite(moved[box, p, 1])):
                continue
            followed += 1
            if found_back[box, p] == 1 and np.isfinite(fb[p]):
                valid_fb[valid] = fb[p]
                valid += 1
                if fb[p] <= max_fb and residual[box, p] <= max_residual:
                    reliable[p] = True
                    reliable_fb[used] = fb[p]
                    used += 1
        followed_count[box] = followed
        reliable_fraction[box] = used / max(followed, 1)
        median_fb[box] = _median(valid_fb[:valid])
        # the better half of the reliable points (FB error at most their median) moves the box
        cut = _median(reliable_fb[:used])
        used = 0
        for p in range(points):
            if reliable[p] and fb[p] <= cut:
                shift_x[used] = np.float64(moved[box, p, 0]) - start[box, p, 0]
                shift_y[used] = np.float64(moved[box, p, 1]) - start[box, p, 1]
                used_points[used] = p
                used += 1
        dx[box] = _median(shift_x[:used])
        dy[box] = _median(shift_y[:used])
        # scale: the median over pairs of used points of (new distance / old distance)
        pairs = 0
        for i in range(used):
            first = used_points[i]
            for j in range(i + 1, used):
                second = used_points[j]
                old = math.hypot(start[box, first, 0] - start[box, second, 0],
                                 start[box, first, 1] - start[box, second, 1])
                if old > 0:
                    ratios[pairs] = math.hypot(
                        np.float64(moved[box, first, 0]) - np.float64(moved[box, second, 0]),
                        np.float64(moved[box, first, 1]) - np.float64(moved[box, second, 1])
                    ) / old
                    pairs += 1
        scale[box] = _median(ratios[:pairs])
    return followed_count, reliable_fraction, median_fb, dx, dy, scale


@njit(cache=True, nogil=True, error_model='numpy')
def _median(values):
    """The median of ``values``, NaN when empty (NumPy's selects the middle values instead
    of sorting: a box's 2016 pairwise scale ratios cost a quarter)."""
    return np.median(values) if len(values) else np.nan


def track(frames, boxes, settings=TrackerSettings()):
    """Track ``boxes`` (in ``frames[0]``) through the greyscale ``frames``: ``(boxes, alive,
    confidence, reasons)`` at the last frame."""
    tracker = MedianFlow(settings)
    tracker.next_frame(frames[0])
    ids = tracker.add(boxes)
    for frame in frames[1:]:
        tracker.next_frame(frame)
    tracker.finish(ids)
    return tracker.boxes[ids], tracker.alive(ids), tracker.confidence(ids), tracker.reasons(ids)
