"""Where the video writers' frames come from: finding videos, decoding them in order.

One module although longer than 300 lines: finding a source and decoding it share the index
and timestamp conventions below (a frame folder's numbering *is* its indices), which must not
drift apart.

Two kinds of source:

* **video files** (``.mp4 .avi .mkv .webm .mov .mpg .mpeg .m4v``, any case), decoded with
  PyAV (FFmpeg). The first video stream is read; frames come out in presentation order,
  turned upright by their display rotation (a phone's portrait video is stored sideways).
* **frame folders** in the layout of tracking datasets (GOT-10k, TrackingNet): one folder per
  sequence holding frames whose file names are numbers (``00000001.jpg``, ``00000002.jpg``, …
  or ``0.jpg``, ``1.jpg``, …), with an optional ``groundtruth.txt`` of ``x,y,w,h`` boxes, one
  line per frame (TrackingNet keeps it as ``../../anno/<sequence>.txt``; both are found).

Every frame has an **index** (0-based: its position in the video; for a frame folder, the
file's number minus 1, or minus 0 when numbering starts at 0, so a gap in the numbering is a
gap in the indices) and a **timestamp** in seconds: ``(pts - stream start) * time_base`` for
video files, so variable frame rate video gets its real times; ``index / folder_fps`` for
frame folders, which carry no timing.

:class:`VideoReader` decodes lazily: :meth:`VideoReader.decoded_frames` yields every decoded
frame as a :class:`DecodedFrame` whose pixels are converted to RGB only when asked for
(``rgb()``, or a cheap ``thumbnail()``), so frames skipped by a stride cost a decode (which
inter-frame codecs need anyway) but no colour conversion. :meth:`VideoReader.frames` is the
simple interface: ``Frame(index, timestamp, rgb)`` for every ``stride``-th frame.
"""
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from fastssl_common.errors import UserError
from fastssl_common.images import (
    IMAGE_EXTENSIONS,
    NotARegularFile,
    check_regular_file,
    describe_failure,
    load_rgb,
    to_rgb,
)
from writers.image_sources import walk_visible
from writers.writer_common import stored_size

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov', '.mpg', '.mpeg', '.m4v')
GROUNDTRUTH_NAME = 'groundtruth.txt'
DEFAULT_FOLDER_FPS = 30.0      # frame folders carry no timing; TrackingNet is 30 fps
SHORTFALL_TOLERANCE = 0.05     # frames short of the header's count that still count as whole
DAMAGED = 'decoded after a damaged packet, before the next key frame (its picture is wrong)'
_NUMBERED = re.compile(r'^([0-9]+)$')
_MAX_FRAME_NUMBER = 2 ** 63 - 1
_MAX_FRAME_DIGITS = len(str(_MAX_FRAME_NUMBER))   # longer: int() would be slow or refuse


class VideoError(Exception):
    """A video that cannot be read; the message is one line naming what went wrong."""


class Frame(NamedTuple):
    """One frame: 0-based index, time in seconds, ``H x W x 3`` uint8 RGB pixels."""
    index: int
    timestamp: float
    rgb: np.ndarray


# ---------------------------------------------------------------------------- sources

@dataclass
class VideoSource:
    """A video file (``kind == "file"``) or a frame folder (``kind == "frames"``).

    For a frame folder, ``frame_files`` lists ``(index, path)`` sorted by index, ``missing``
    counts the indices absent between the first (0) and the last, and ``groundtruth`` is the
    box file's path (or None).
    """
    path: str
    kind: str = 'file'
    frame_files: list = field(default_factory=list)
    missing: int = 0
    groundtruth: str = None
    _boxes: object = field(default=None, repr=False)

    @property
    def boxes(self):
        """The ``groundtruth.txt`` boxes as an ``N x 4`` float32 array (x, y, w, h) whose row
        ``j`` belongs to frame index ``j`` (``nan`` rows where the file says so), or None when
        there is no box file. Raises VideoError for a malformed file."""
        if self.groundtruth is None:
            return None
        if self._boxes is None:
            self._boxes = read_groundtruth(self.groundtruth)
        return self._boxes


def is_video_name(path):
    """True when the file name has one of the supported video extensions (any case)."""
    return path.lower().endswith(VIDEO_EXTENSIONS)


def _frame_number(name):
    """The number of a frame file (``00000012.jpg`` -> 12), or None for other files and for
    numbers beyond the 64-bit frame indices the writers store."""
    stem, ext = os.path.splitext(name)
    if ext.lower() not in IMAGE_EXTENSIONS or not _NUMBERED.match(stem):
        return None
    digits = stem.lstrip('0') or '0'
    if len(digits) > _MAX_FRAME_DIGITS or int(digits) > _MAX_FRAME_NUMBER:
        return None
    return int(digits)


def frame_folder(folder, names=None):
    """A VideoSource for a frame folder, or None when it holds no numbered frame images."""
    if names is None:
        names = os.listdir(folder)
    numbered = {}
    for name in sorted(names):
        number = _frame_number(name)
        if number is not None and number not in numbered:   # 1.jpg beats 0001.jpg, once
            numbered[number] = os.path.join(folder, name)
    if not numbered:
        return None
    base = 0 if min(numbered) == 0 else 1
    files = [(number - base, path) for number, path in sorted(numbered.items())]
    missing = files[-1][0] + 1 - len(files)
    groundtruth = os.path.join(folder, GROUNDTRUTH_NAME)
    if not os.path.isfile(groundtruth):    # TrackingNet: TRAIN_k/frames/<seq>/, TRAIN_k/anno/
        parent = os.path.dirname(os.path.abspath(folder))
        anno = os.path.join(os.path.dirname(parent), 'anno',
                            os.path.basename(os.path.abspath(folder)) + '.txt')
        groundtruth = anno if os.path.basename(parent) == 'frames' and os.path.isfile(anno) \
            else None
    return VideoSource(folder, 'frames', files, missing, groundtruth)


def find_videos(src):
    """The VideoSources of SRC: a video file, or a folder searched recursively (sorted by
    path, hidden entries skipped) for video files and numbered-frame folders.

    A file given directly is tried as a video whatever its extension (except an image's).
    Raises UserError naming SRC when it does not exist or holds nothing to read.
    """
    if not os.path.exists(src):
        raise UserError(f'source {src} does not exist')
    if not os.path.isdir(src):
        if src.lower().endswith(IMAGE_EXTENSIONS):
            raise UserError(f'source {src} is a single image; pass its frame folder')
        return [VideoSource(src)]
    found = []
    for folder, files in walk_visible(src):
        found.extend(VideoSource(os.path.join(folder, f)) for f in files if is_video_name(f))
        sequence = frame_folder(folder, files)
        if sequence is not None:
            found.append(sequence)
    if not found:
        raise UserError(f"no videos ({' '.join(VIDEO_EXTENSIONS)}) or numbered frame folders "
                        f"found under {src}")
    found.sort(key=lambda source: os.path.normpath(source.path).split(os.sep))
    return found


def read_groundtruth(path):
    """Boxes ``x, y, w, h`` (comma, tab or space separated; ``nan`` allowed), one line per
    frame, as an ``N x 4`` float32 array. Raises VideoError naming the file and line."""
    try:
        with open(path, encoding='utf-8') as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise VideoError(f'cannot read box file {path}: {describe_failure(err)}') from None
    while lines and not lines[-1].strip():
        lines.pop()
    boxes = np.full((len(lines), 4), np.nan, np.float32)
    for row, line in enumerate(lines):
        values = [v for v in re.split(r'[,\s]+', line.strip()) if v]
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            numbers = []
        if len(numbers) != 4:
            raise VideoError(f'box file {path} line {row + 1} is not four numbers x,y,w,h')
        boxes[row] = numbers
    return boxes


# ---------------------------------------------------------------------------- decoding

def thumbnail_size(height, width, side):
    """(height, width) with the longest side ``side`` (never upscaled, at least 1 pixel)."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def shown_width(width, aspect):
    """The width of ``width`` pixels of aspect ``aspect`` (width over height) made square."""
    return max(1, round(width * aspect))


class DecodedFrame:
    """One decoded frame; its pixels are converted only when asked for."""

    __slots__ = ('index', 'timestamp', '_frame', '_path', '_reformatters', '_converted',
                 '_turns', '_aspect', '_size', '_damage')

    def __init__(self, index, timestamp, frame=None, path=None, reformatters=None, turns=0,
                 aspect=1.0, size=None, damage=None):
        self.index, self.timestamp = index, timestamp
        self._frame, self._path = frame, path     # a PyAV VideoFrame, or a frame image path
        # PyAV's frame.reformat builds a new swscale context per call (~2 ms), and so does a
        # reformatter whose target size changes: the reader keeps one per output size
        # ({(width, height): VideoReformatter}), shared by its frames.
        self._reformatters = reformatters
        # the frame's conversions by size: the stored frame and the tracker's copy are often
        # the same size (--max-resolution 320, tracking at 320), one conversion serves both
        self._converted = {}
        self._turns = turns       # quarter turns counter-clockwise that show it upright
        self._aspect = aspect     # a video pixel's width over its height (1: square pixels)
        self._size = size         # a frame image's expected (width, height): the sequence's
        self._damage = damage     # why a video frame's pixels are not to be trusted, or None

    def _display_size(self):
        """(height, width) of a video frame as shown: its pixels made square, then its
        display rotation."""
        height, width = self._frame.height, shown_width(self._frame.width, self._aspect)
        return (width, height) if self._turns % 2 else (height, width)

    def shown_size(self):
        """``(height, width)`` of a video frame as shown; None for a frame image (a frame
        folder's frames all have its first frame's size, others are skipped)."""
        return self._display_size() if self._frame is not None else None

    def _reformat(self, width, height):
        from av.video.reformatter import VideoReformatter

        converted = self._converted.get((width, height))
        if converted is not None:
            converted.flags.writeable = False     # now shared by two callers: neither may change it
            return converted
        coded = (height, width) if self._turns % 2 else (width, height)
        reformatter = self._reformatters.get(coded)
        if reformatter is None:
            reformatter = self._reformatters[coded] = VideoReformatter()
        converted = reformatter.reformat(self._frame, width=coded[0], height=coded[1],
                                         format='rgb24', interpolation='AREA').to_ndarray()
        if self._turns:
            converted = np.ascontiguousarray(np.rot90(converted, self._turns))
        self._converted[width, height] = converted
        return converted

    def _check(self, width=None, height=None):
        """VideoError for a frame not to store: decoded from damaged data, or a frame image
        of another size than its sequence's (its pairs would not match, nor its tracks)."""
        if self._damage is not None:
            raise VideoError(self._damage)
        if self._size and width is not None and (width, height) != self._size:
            raise VideoError(f'frame {self._path} is {width}x{height}, not the '
                             f'{self._size[0]}x{self._size[1]} of its sequence')

    def rgb(self, max_side=None):
        """``H x W x 3`` uint8 RGB, upright, shrunk (area interpolation) to a longest side of at
        most ``max_side`` with FFCV's size arithmetic (a second call for the same size of a
        video frame, or a :meth:`thumbnail` of that size, returns the same array, then
        read-only). Raises VideoError for an unreadable or damaged frame."""
        self._check()
        if self._frame is not None:
            height, width = stored_size(*self._display_size(), max_side)
            return self._reformat(width, height)
        try:
            image = load_rgb(self._path)
        except Exception as err:  # a bad frame image: reported by the caller
            raise VideoError(f'frame {self._path}: {describe_failure(err)}') from None
        self._check(image.shape[1], image.shape[0])
        height, width = stored_size(*image.shape[:2], max_side)
        if (height, width) != image.shape[:2]:
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return image

    def thumbnail(self, side):
        """A small RGB copy with the longest side ``side`` (for cut and motion measures),
        converted as :meth:`rgb` converts (16-bit and transparent images included)."""
        self._check()
        if self._frame is not None:
            height, width = thumbnail_size(*self._display_size(), side)
            return self._reformat(width, height)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                with Image.open(self._path) as image:
                    size = image.size
                    image.draft('RGB', (side, side))   # JPEG: decode at 1/2, 1/4, 1/8 scale
                    rgb = to_rgb(image)
        except Exception as err:  # a bad frame image: reported by the caller
            raise VideoError(f'frame {self._path}: {describe_failure(err)}') from None
        self._check(*size)
        height, width = thumbnail_size(*rgb.shape[:2], side)
        return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


class VideoReader:
    """Decode a :class:`VideoSource` in order. Use as a context manager (or call close()).

    Opening raises VideoError (not a video, no video stream, unreadable file). A damaged
    packet is skipped and decoding goes on (:attr:`decode_errors` counts them,
    :attr:`first_decode_error` says where and why); the frames decoded after it up to the next
    key frame raise VideoError when converted (as a bad frame image does, and a frame image of
    another size than the folder's first); reading that fails part way stops the
    iteration quietly: the frames before it were yielded and :attr:`error` says what happened.
    A file cut short may end without any error, before the frames its header declares
    (:meth:`shortfall`). For frame folders a bad image is skipped by :meth:`frames` and listed
    in :attr:`bad_frames`.

    Attributes: ``width``, ``height`` (of the first frame or the stream header; upright once
    the first frame is decoded), ``fps``
    (average rate, or ``folder_fps``), ``promised`` (the frame count the header declares,
    :meth:`estimated_frames` at opening), ``decoded`` (frames decoded so far), ``finished``
    (decoding reached the end), ``error``, ``bad_frames`` (list of ``(index, reason)``).
    Frame indices count decoded frames, so after a skipped packet they run one short.
    """

    def __init__(self, source, *, folder_fps=DEFAULT_FOLDER_FPS, threads=0):
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            source = (frame_folder(path) if os.path.isdir(path) else None) or VideoSource(path)
        self.source = source
        self.error, self.bad_frames, self.decoded = None, [], 0
        self._segment_start = 0      # position of the first frame decoded (a segment's)
        self.decode_errors, self.first_decode_error, self.finished = 0, None, False
        self._container = None
        if source.kind == 'frames':
            self.fps = float(folder_fps)
            self._open_folder()
        else:
            self._open_file(threads)
        self.promised = self.estimated_frames()

    def _open_folder(self):
        if not self.source.frame_files:
            raise VideoError(f'frame folder {self.source.path} holds no numbered frames')
        self.width = self.height = 0
        for _, path in self.source.frame_files[:8]:   # size from the first readable header
            try:
                with Image.open(path) as image:
                    self.width, self.height = image.size
                break
            except Exception:  # a bad first frame is reported when it is decoded
                continue

    def _open_file(self, threads):
        path = self.source.path
        if os.path.isdir(path):
            raise VideoError(f'{path} is a folder without numbered frames')
        try:
            check_regular_file(path)
        except NotARegularFile as err:
            raise VideoError(describe_failure(err)) from None
        try:
            self._container = open_container(path)
        except Exception as err:  # FFmpeg's reason (e.g. 'Invalid data found') is the message
            raise VideoError(f'not a readable video: {_av_reason(err)}') from None
        streams = self._container.streams.video
        if not streams:
            self.close()
            raise VideoError('no video stream in the file')
        stream = self._stream = streams[0]
        context = stream.codec_context
        context.thread_type = 'AUTO'
        context.thread_count = max(0, int(threads))      # 0: FFmpeg picks
        # non-square pixels (anamorphic DVD or broadcast video, QCIF's 128:117): shown wider
        # or narrower than coded, as players show them
        sar = context.sample_aspect_ratio
        self._aspect = float(sar) if sar and sar > 0 else 1.0
        self.width, self.height = shown_width(context.width, self._aspect), context.height
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self._time_base = stream.time_base
        self._start = stream.start_time

    def estimated_frames(self):
        """The frame count the header claims (frame folders: exact), or None if unknown."""
        if self.source.kind == 'frames':
            return len(self.source.frame_files)
        stream = self._stream
        if stream.frames:
            return int(stream.frames)
        if stream.duration and stream.time_base and self.fps:
            return max(1, round(float(stream.duration * stream.time_base) * self.fps))
        if self._container.duration and self.fps:
            return max(1, round(self._container.duration / 1e6 * self.fps))
        return None

    def decoded_frames(self, segment=None):
        """Every frame in order as a :class:`DecodedFrame` (valid until the next one); from
        the first frame of ``segment`` (a :class:`writers.video_segments.Segment`) on when
        given: a video file then seeks to its key frame, and a frame whose presentation time
        is not the segment's next one ends the iteration with :attr:`error` set."""
        start = self._segment_start = 0 if segment is None else segment.start
        if self.source.kind == 'frames':
            size = (self.width, self.height) if self.width else None
            for index, path in self.source.frame_files[start:]:
                self.decoded += 1
                yield DecodedFrame(index, index / self.fps, path=path, size=size)
            self.finished = True
            return
        import av

        container, stream = self._container, self._stream
        reformatters = {}
        damaged = False     # a packet was lost since the last key frame
        times = None if segment is None else segment.times
        try:
            if times is not None:
                container.seek(int(times[0]), stream=stream, backward=True, any_frame=False)
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as err:    # one damaged packet: skip it, go on
                    self.decode_errors += 1
                    if self.first_decode_error is None:
                        self.first_decode_error = (f'after frame {self.decoded}: '
                                                   f'{_av_reason(err)}')
                    damaged = True
                    continue
                for frame in frames:
                    if times is not None:
                        if frame.pts is not None and frame.pts < times[0]:
                            continue      # shown before the key frame: the segment before's
                        if self.decoded >= len(times) or frame.pts != times[self.decoded]:
                            self.error = (f'frame {start + self.decoded} is not the one the '
                                          f'file lists at that position')
                            return
                    index = start + self.decoded
                    self.decoded += 1
                    # the frames after a lost packet are predicted from pictures the decoder
                    # never had: FFmpeg fills them with whatever it holds (another shot's
                    # pixels) until the next key frame starts afresh
                    damaged = damaged and not frame.key_frame
                    turns = self._turns(frame)
                    if self.decoded == 1 and turns % 2:   # portrait phone video: stored sideways
                        self.width, self.height = self.height, self.width
                    yield DecodedFrame(index, self._timestamp(frame, index), frame=frame,
                                       reformatters=reformatters, turns=turns,
                                       aspect=self._aspect,
                                       damage=DAMAGED if damaged or frame.is_corrupt else None)
        except (av.FFmpegError, OSError, ValueError) as err:
            self.error = f'decoding stopped after frame {self.decoded}: {_av_reason(err)}'
        self.finished = True

    def packet_times(self):
        """``(times, key frames)``: each packet's presentation time and key-frame flag in file
        order, from demuxing alone (no decoding); None for a frame folder, a packet without
        a time or a file that does not demux to its end."""
        if self.source.kind != 'file':
            return None
        times, keys = [], []
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:             # the demuxer's end-of-stream packet
                    continue
                if packet.pts is None:
                    return None
                times.append(packet.pts)
                keys.append(packet.is_keyframe)
        except Exception:  # a damaged file: decoding it in one task reports what
            return None
        return times, keys

    def indices_before(self, position):
        """The indices of the frames before position ``position``, as one read gives them."""
        if self.source.kind == 'frames':
            return [index for index, _ in self.source.frame_files[:position]]
        return range(position)

    def shortfall(self):
        """``(promised, decoded)`` when a video file decoded to its end gave markedly fewer
        frames than its header declares (a file cut short or damaged), else None. Counts
        from durations are estimates: a shortfall counts beyond 2 frames and 5 %."""
        if self.source.kind != 'file' or not self.finished or not self.promised or \
                self._segment_start:
            return None
        if self.promised - self.decoded > max(2, SHORTFALL_TOLERANCE * self.promised):
            return self.promised, self.decoded
        return None

    @staticmethod
    def _turns(frame):
        """Quarter turns counter-clockwise that show ``frame`` upright: its display matrix
        (phones store portrait video sideways, with a rotation to apply when shown)."""
        # getattr: a PyAV that does not read the display matrix shows frames as stored
        return round(getattr(frame, 'rotation', 0) / 90) % 4

    def _timestamp(self, frame, index):
        if frame.pts is not None and self._time_base:
            start = self._start if self._start is not None else 0
            return float((frame.pts - start) * self._time_base)
        return index / self.fps if self.fps else float(index)

    def frames(self, stride=1, max_frames=None, max_side=None, segment=None):
        """``Frame(index, timestamp, rgb)`` for every frame whose index is a multiple of
        ``stride``, at most ``max_frames`` of them (None: all), longest side at most
        ``max_side``, of ``segment``'s frames only when given (see :meth:`decoded_frames`).
        Frames in between are decoded but never converted to RGB."""
        if stride < 1:
            raise ValueError('stride must be at least 1')
        kept = 0
        if max_frames is not None and max_frames <= 0:
            return
        length = None if segment is None or segment.stop is None else \
            segment.stop - segment.start
        for frame in self.decoded_frames(segment):
            if length is not None and self.decoded > length:
                self.decoded = length        # the next segment's first frame is its own
                return
            if frame.index % stride:
                continue
            try:
                rgb = frame.rgb(max_side)
            except VideoError as err:
                self.bad_frames.append((frame.index, str(err)))
                continue
            yield Frame(frame.index, frame.timestamp, rgb)
            kept += 1
            if max_frames is not None and kept >= max_frames:
                return

    def close(self):
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_frames(source, stride=1, max_frames=None, max_side=None, **kwargs):
    """All ``Frame``s of a source as a list (see :meth:`VideoReader.frames`)."""
    with VideoReader(source, **kwargs) as reader:
        return list(reader.frames(stride, max_frames, max_side))


def open_container(path):
    """av.open, tolerant of badly encoded metadata: PyAV before 19 raises on it unless told
    ``metadata_errors='ignore'``; 19 dropped that option (and no longer raises)."""
    import av

    try:
        return av.open(path, metadata_errors='ignore')
    except TypeError:
        return av.open(path)


def _av_reason(err):
    """FFmpeg's reason without PyAV's errno prefix and file name, on one line."""
    text = getattr(err, 'strerror', None) or str(err) or type(err).__name__
    return ' '.join(str(text).split())


def video_summary(reader):
    """A JSON-able description of an open reader's source, for sidecars."""
    source = reader.source
    info = {'source': os.path.abspath(source.path), 'kind': source.kind,
            'width': reader.width, 'height': reader.height,
            'fps': None if reader.fps is None or not math.isfinite(reader.fps)
            else round(reader.fps, 6), 'frames_promised': reader.promised}
    if source.kind == 'frames':
        info['missing_frames'] = source.missing
        info['groundtruth'] = None if source.groundtruth is None \
            else os.path.abspath(source.groundtruth)
    return info
