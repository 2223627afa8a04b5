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
