"""Where the video writers' frames come from: finding videos, decoding them in order.

One module although longer than 300 lines: finding a source and decoding it share the index
and timestamp conventions below (a frame folder's numbering *is* its indices), which must not
drift apart.

Two kinds of source:

* **video files** (``.mp4 .avi .mkv .webm .mov .mpg .mpeg .m4v .ts .mts .m2ts .3gp .flv
  .wmv .ogv``, any case), decoded with PyAV (FFmpeg). The first video stream is read; frames
  come out in presentation order, turned upright by their display rotation (a phone's
  portrait video is stored sideways).
* **frame folders** in the layout of tracking datasets (GOT-10k, TrackingNet): one folder per
  sequence holding frames whose file names are numbers (``00000001.jpg``, ``00000002.jpg``, …
  or ``0.jpg``, ``1.jpg``, …), or numbers after one common prefix (``img_00001.jpg``: MMAction2
  rawframes, ``ffmpeg -i v.mp4 img_%05d.jpg``), with an optional ``groundtruth.txt`` of
  ``x,y,w,h`` boxes, one line per frame (TrackingNet keeps it as ``../../anno/<sequence>.txt``;
  both are found).

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
import itertools
import math
import os
import re
import sys
import warnings
from collections import Counter
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
from writers.image_sources import extension_counts, listed, print_repeats, walk_visible
from writers.writer_common import stored_size

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mkv', '.webm', '.mov', '.mpg', '.mpeg', '.m4v', '.ts',
                    '.mts', '.m2ts', '.3gp', '.flv', '.wmv', '.ogv')
GROUNDTRUTH_NAME = 'groundtruth.txt'
DEFAULT_FOLDER_FPS = 30.0      # frame folders carry no timing; TrackingNet is 30 fps
SHORTFALL_TOLERANCE = 0.05     # frames short of the header's count that still count as whole
MAX_REORDER = 16    # B pictures shown before a later one at most (H.264's and HEVC's limit)
DAMAGED = ('damaged, or predicted from a damaged picture before the next key frame (its '
           'picture is wrong)')
_NUMBERED = re.compile(r'([^0-9]*)([0-9]+)')      # prefix, frame number
_MAX_FRAME_NUMBER = 2 ** 63 - 1
_MAX_FRAME_DIGITS = len(str(_MAX_FRAME_NUMBER))   # longer: int() would be slow or refuse


class VideoError(Exception):
    """A video that cannot be read; the message is one line naming what went wrong."""


class StoredTooSmall(Exception):
    """A video whose frames the size cap shrinks too small to store: the whole video is
    skipped (not a VideoError, which callers take for one bad frame); one line."""


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
    counts the indices absent between the first (0) and the last, ``groundtruth`` is the
    box file's path (or None) and ``duplicates`` lists ``(left out, kept)`` paths of files
    that share a frame number (the first name in sorted order is kept).
    """
    path: str
    kind: str = 'file'
    frame_files: list = field(default_factory=list)
    missing: int = 0
    groundtruth: str = None
    duplicates: list = field(default_factory=list)
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
    """``(prefix, number)`` of a frame file (``img_00012.jpg`` -> ``('img_', 12)``,
    ``00000012.jpg`` -> ``('', 12)``), or None for other files and for numbers beyond the
    64-bit frame indices the writers store."""
    stem, ext = os.path.splitext(name)
    match = _NUMBERED.fullmatch(stem)
    if ext.lower() not in IMAGE_EXTENSIONS or match is None:
        return None
    prefix, digits = match.group(1), match.group(2).lstrip('0') or '0'
    if len(digits) > _MAX_FRAME_DIGITS or int(digits) > _MAX_FRAME_NUMBER:
        return None
    return prefix, int(digits)


def frame_folder(folder, names=None):
    """A VideoSource for a frame folder, or None when it holds no numbered frame images.

    The frames are the images named by a number: plain numbers (``00000001.jpg``) when there
    are any, else numbers after a prefix that every numbered image shares (``img_00001.jpg``).
    Of two files with one number the first name in sorted order is kept (``0003.jpg`` before
    ``3.jpg``), the other listed in ``duplicates``.
    """
    if names is None:
        names = os.listdir(folder)
    by_prefix = {}
    for name in sorted(names):
        parsed = _frame_number(name)
        if parsed is not None:
            by_prefix.setdefault(parsed[0], []).append((parsed[1], name))
    # images of several prefixes (img_ and flow_x_ in a rawframes folder, or photos) do not
    # say which are the frames; plain numbers do, as they always have
    if '' not in by_prefix and len(by_prefix) != 1:
        return None
    numbered, duplicates = {}, []
    for number, name in by_prefix.get('', next(iter(by_prefix.values()))):
        path = os.path.join(folder, name)
        if number in numbered:
            duplicates.append((path, numbered[number]))
        else:
            numbered[number] = path
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
    return VideoSource(folder, 'frames', files, missing, groundtruth, duplicates)


def find_videos(src):
    """The VideoSources of SRC: a video file, or a folder searched recursively (sorted by
    path; hidden entries and archive debris skipped, see :func:`walk_visible`) for video
    files and numbered-frame folders.

    A file given directly is tried as a video whatever its extension (except an image's).
    What a folder search leaves out is said in notes on stderr: files of other extensions,
    images that are not a folder's numbered frames, frames whose number an earlier name
    of their folder has, and a folder or video file that a symbolic link leads to again (read
    once, at its first path in sorted order). Raises UserError naming SRC when it does not
    exist or holds nothing to read.
    """
    if not os.path.exists(src):
        raise UserError(f'source {src} does not exist')
    if not os.path.isdir(src):
        if src.lower().endswith(IMAGE_EXTENSIONS):
            raise UserError(f'source {src} is a single image; pass its frame folder')
        return [VideoSource(src)]
    found, others, unnumbered, repeats = [], [], [], []
    for folder, files in walk_visible(src, repeats):
        sequence = frame_folder(folder, files)
        used = set()
        if sequence is not None:
            found.append(sequence)
            used = {path for _, path in sequence.frame_files}
            used.update(path for path, _ in sequence.duplicates)
        images = 0
        for name in files:
            path = os.path.join(folder, name)
            if is_video_name(name):
                found.append(VideoSource(path))
            elif name.lower().endswith(IMAGE_EXTENSIONS):
                images += path not in used
            else:
                others.append(path)
        if images:
            unnumbered.append(f'{folder} ({images})')
    # a box file is read with its frame folder (TrackingNet's lies in a folder of its own)
    boxes = {os.path.abspath(s.groundtruth) for s in found if s.groundtruth}
    ignored = Counter(os.path.splitext(path)[1].lower() for path in others
                      if os.path.abspath(path) not in boxes)
    if not found:        # what it holds, in the one error line
        held = [extension_counts(ignored)] if ignored else []
        held += [f'images that are not numbered frames in {listed(unnumbered)}'] \
            if unnumbered else []
        raise UserError(f"no videos ({' '.join(VIDEO_EXTENSIONS)}) or numbered frame folders "
                        f"found under {src}" + (f" (it holds {'; '.join(held)})" if held else ''))
    _print_left_out(ignored, unnumbered, [s for s in found if s.duplicates])
    found.sort(key=lambda source: os.path.normpath(source.path).split(os.sep))
    # a video file linked twice is one video (one label), read at its first path
    first_path, linked, once = {}, [], []
    for source in found:
        real = os.path.realpath(source.path) if source.kind == 'file' else None
        if real in first_path:
            linked.append((source.path, first_path[real]))
            continue
        if real is not None:
            first_path[real] = source.path
        once.append(source)
    print_repeats(repeats, linked)
    return once


def _print_left_out(ignored, unnumbered, duplicated):
    """Notes on stderr of the files a folder search left out (never left out silently)."""
    if ignored:
        print(f"note: {sum(ignored.values())} files left out for their extension "
              f"({extension_counts(ignored)}); videos are read from "
              f"{', '.join(VIDEO_EXTENSIONS)} files and numbered frame folders", file=sys.stderr)
    if unnumbered:
        print(f'note: left out the images that are not numbered frames (frames are named by '
              f'numbers after one shared prefix, as 00001.jpg or img_00001.jpg) in '
              f'{listed(unnumbered)}', file=sys.stderr)
    for source in duplicated:
        names = [f'{os.path.basename(dropped)} (kept {os.path.basename(kept)})'
                 for dropped, kept in source.duplicates]
        print(f'note: frame folder {source.path} names frame numbers twice; left out '
              f'{listed(names)}', file=sys.stderr)


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


def falls_short(promised, got):
    """True when ``got`` frames are markedly fewer than the ``promised`` ones: beyond 2
    frames and ``SHORTFALL_TOLERANCE`` of them."""
    return promised - got > max(2, SHORTFALL_TOLERANCE * promised)


def shown_width(width, aspect):
    """The width of ``width`` pixels of aspect ``aspect`` (width over height) made square."""
    return max(1, round(width * aspect))


def _checked_size(shown, max_side, min_side):
    """The stored ``(height, width)`` of a frame shown ``shown`` (height, width); raises
    :class:`StoredTooSmall` when ``max_side`` shrinks a side below ``min_side``."""
    height, width = stored_size(*shown, max_side)
    if min(height, width) < min(min_side, *shown):
        raise StoredTooSmall(f'its {shown[1]}x{shown[0]} px frames shrink to {width}x{height} '
                             f'px at --max-resolution {max_side}, below the {min_side} px a '
                             f'side needs')
    return height, width


class FrameScalers:
    """A reader's swscale contexts, one per output size: PyAV's ``frame.reformat`` builds a
    new one per call (~2 ms), and so does a reformatter whose target size changes. They
    scale on the decoder's ``threads`` (0: every CPU): a pool worker's share, as its decoder
    (swscale's own choice, every CPU, costs a fifth more CPU time on two busy cores)."""

    def __init__(self, threads):
        self.threads = threads
        self._by_size = {}

    def convert(self, frame, width, height, image_format):
        """``frame`` (a PyAV VideoFrame) as a ``height x width`` ``image_format`` array."""
        from av.video.reformatter import VideoReformatter

        scaler = self._by_size.get((width, height))
        if scaler is None:
            scaler = self._by_size[(width, height)] = VideoReformatter()
        return scaler.reformat(frame, width=width, height=height, format=image_format,
                               interpolation='AREA', threads=self.threads).to_ndarray()


class DecodedFrame:
    """One decoded frame; its pixels are converted only when asked for."""

    __slots__ = ('index', 'timestamp', '_frame', '_path', '_scalers', '_converted',
                 '_turns', '_mirror', '_alpha', '_aspect', '_size', '_damage', '_min_side')

    def __init__(self, index, timestamp, frame=None, path=None, scalers=None, turns=0,
                 mirror=False, alpha=False, aspect=1.0, size=None, damage=None, min_side=1):
        self.index, self.timestamp = index, timestamp
        self._frame, self._path = frame, path     # a PyAV VideoFrame, or a frame image path
        self._scalers = scalers                   # the reader's FrameScalers
        # the frame's conversions by size: the stored frame and the tracker's copy are often
        # the same size (--max-resolution 320, tracking at 320), one conversion serves both
        self._converted = {}
        self._turns = turns       # quarter turns counter-clockwise that show it upright
        self._mirror = mirror     # flipped left to right before the turns (a mirrored display)
        # transparent pixels keep whatever colour they store: composited onto white, as
        # frame folders' images are
        self._alpha = alpha
        self._aspect = aspect     # a video pixel's width over its height (1: square pixels)
        self._size = size         # a frame image's expected (width, height): the sequence's
        self._damage = damage     # why a video frame's pixels are not to be trusted, or None
        self._min_side = min_side   # the least side rgb() may shrink a frame to

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
        import av

        converted = self._converted.get((width, height))
        if converted is not None:
            converted.flags.writeable = False     # now shared by two callers: neither may change it
            return converted
        coded = (height, width) if self._turns % 2 else (width, height)
        try:
            converted = self._scalers.convert(self._frame, *coded,
                                              'rgba' if self._alpha else 'rgb24')
        except (av.FFmpegError, ValueError) as err:
            raise VideoError(f'frame {self.index} cannot be converted to RGB at '
                             f'{width}x{height}: {_av_reason(err)}') from None
        if self._alpha:
            converted = to_rgb(Image.fromarray(converted, 'RGBA'))
        if self._mirror:
            converted = converted[:, ::-1]
        if self._turns or self._mirror:
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
        read-only). Raises VideoError for an unreadable or damaged frame, StoredTooSmall when
        the cap shrinks a side below the reader's ``min_side``."""
        self._check()
        if self._frame is not None:
            height, width = _checked_size(self._display_size(), max_side, self._min_side)
            return self._reformat(width, height)
        try:
            image = load_rgb(self._path)
        except Exception as err:  # a bad frame image: reported by the caller
            raise VideoError(f'frame {self._path}: {describe_failure(err)}') from None
        self._check(image.shape[1], image.shape[0])
        height, width = _checked_size(image.shape[:2], max_side, self._min_side)
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
    :attr:`first_decode_error` says where and why); the frames predicted from it or from a
    picture FFmpeg concealed, up to the next key frame, raise VideoError when converted (as a
    bad frame image does, and a frame image of another size than the folder's first); reading
    that fails part way stops the iteration quietly: the frames before it were yielded and
    :attr:`error` says what happened.
    A file cut short may end without any error, before the frames its header declares
    (:meth:`shortfall`). For frame folders a bad image is skipped by :meth:`frames` and listed
    in :attr:`bad_frames`.

    Attributes: ``width``, ``height`` (of the first frame or the stream header; upright once
    the first frame is decoded), ``fps``
    (average rate, or ``folder_fps``), ``promised`` (the frame count the header declares,
    :meth:`estimated_frames` at opening), ``decoded`` (frames decoded so far), ``finished``
    (decoding reached the end), ``error``, ``bad_frames`` (list of ``(index, reason)``),
    ``declared`` (the frame count a video file states, or None: ``promised`` is then an
    estimate from durations), ``hidden`` (packets met so far that an edit list hides: a
    trimmed MP4 or MOV keeps the pictures before its cut to decode from, and counts them in
    ``declared``), ``hdr`` (a video file's HDR transfer, said in words, or None),
    ``interlaced`` (a frame decoded so far is interlaced: two fields woven into a picture),
    ``video_streams`` (the video streams besides cover art; the one read is FFmpeg's pick),
    ``alpha_dropped`` (a WebM's transparency that the decoder does not read).
    Frame indices count decoded frames, so after a skipped packet they run one short.
    ``min_side``: a frame that the size cap would store with a shorter side raises
    :class:`StoredTooSmall` when converted (the writers skip the video; 1: a side of 0 px).
    """

    def __init__(self, source, *, folder_fps=DEFAULT_FOLDER_FPS, threads=0, min_side=1):
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            source = (frame_folder(path) if os.path.isdir(path) else None) or VideoSource(path)
        self.source = source
        self.error, self.bad_frames, self.decoded = None, [], 0
        self._segment_start = 0      # position of the first frame decoded (a segment's)
        self._min_side = min_side    # see DecodedFrame.rgb
        self.decode_errors, self.first_decode_error, self.finished = 0, None, False
        self._container = None
        self.declared, self.hdr, self.video_streams = None, None, 1
        self.hidden, self.interlaced = 0, False
        self._hidden_times = set()   # presentation times of the pictures an edit list hides
        self.alpha_dropped = False
        self._threads = max(0, int(threads))     # the decoder's and swscale's (0: every CPU)
        if source.kind == 'frames':
            self.fps = float(folder_fps)
            self._open_folder()
        else:
            self._open_file()
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

    def _open_file(self):
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
        from av.stream import Disposition

        # an attached picture (an audio file's cover art) is one still image, not video
        streams = [stream for stream in self._container.streams.video
                   if not stream.disposition & Disposition.attached_pic]
        if not streams:
            cover = bool(self._container.streams.video)
            self.close()
            raise VideoError('no video stream in the file' +
                             (' (only an attached picture: cover art)' if cover else ''))
        self.video_streams = len(streams)
        # several: FFmpeg's choice (a default stream first), else the largest
        best = self._container.streams.best('video')
        stream = self._stream = best if best in streams else max(
            streams, key=lambda s: s.codec_context.width * s.codec_context.height)
        context = stream.codec_context
        context.thread_type = 'AUTO'
        context.thread_count = self._threads      # 0: FFmpeg picks
        # non-square pixels (anamorphic DVD or broadcast video, QCIF's 128:117): shown wider
        # or narrower than coded, as players show them; the container's ratio (MKV display
        # size, MP4 pasp) overrides the codec's, as in FFmpeg's av_guess_sample_aspect_ratio
        sar = next((s for s in (stream.sample_aspect_ratio, context.sample_aspect_ratio)
                    if s and s > 0), None)
        self._aspect = float(sar) if sar else 1.0
        self.width, self.height = shown_width(context.width, self._aspect), context.height
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self._time_base = stream.time_base
        self._start = stream.start_time
        self.declared = int(stream.frames) or None
        self.hdr = _hdr_description(context)
        # WebM keeps VP8/VP9 transparency in a side channel that FFmpeg's own decoders drop
        self.alpha_dropped = (stream.metadata.get('alpha_mode') == '1'
                              and context.name in ('vp8', 'vp9'))

    def estimated_frames(self):
        """The frame count the header claims (frame folders: exact), else an estimate from
        the video's duration (its own: an audio track may last longer), or None."""
        if self.source.kind == 'frames':
            return len(self.source.frame_files)
        stream = self._stream
        if stream.frames:
            return int(stream.frames)
        seconds = None
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        if not seconds:                 # Matroska keeps a track's duration in a tag
            seconds = _tagged_seconds(stream.metadata)
        if not seconds and self._container.duration:
            seconds = self._container.duration / 1e6
        if seconds and self.fps:
            return max(1, round(seconds * self.fps))
        return None

    def decoded_frames(self, segment=None):
        """Every frame in order as a :class:`DecodedFrame` (valid until the next one); from
        the first frame of ``segment`` (a :class:`writers.video_segments.Segment`) on when
        given: a video file then seeks to its key frame (or one before it), and a frame whose
        presentation time is not the segment's next one, or an end before the last frame
        the segment lists, ends the iteration with :attr:`error` set."""
        start = self._segment_start = 0 if segment is None else segment.start
        if self.source.kind == 'frames':
            size = (self.width, self.height) if self.width else None
            for index, path in self.source.frame_files[start:]:
                self.decoded += 1
                yield DecodedFrame(index, index / self.fps, path=path, size=size,
                                   min_side=self._min_side)
            self.finished = True
            return
        import av

        container, stream = self._container, self._stream
        scalers = FrameScalers(self._threads)
        times = None if segment is None else segment.times
        # the display matrix (the container's) and the pixel format are the stream's: read
        # from its first frame, not per frame (a tenth of a pair writer's time)
        turns = mirror = alpha = None
        try:
            # a fresh reader starts at the first frame: only a later segment seeks
            packets = self._packets_from(int(times[0])) if start else container.demux(stream)
            for frame, damaged in self._judged_frames(packets):
                if frame.pts in self._hidden_times:
                    continue          # before a trimmed file's cut, or after it: not shown
                if times is not None:
                    if frame.pts is not None and frame.pts < times[0]:
                        continue      # shown before the key frame: the segment before's
                    if self.decoded >= len(times) or frame.pts != times[self.decoded]:
                        self.error = (f'frame {start + self.decoded} is not the one the '
                                      f'file lists at that position')
                        return
                index = start + self.decoded
                self.decoded += 1
                if turns is None:
                    turns, mirror = _orientation(frame)
                    alpha = any(part.is_alpha for part in frame.format.components)
                self.interlaced = self.interlaced or frame.interlaced_frame
                if self.decoded == 1 and turns % 2:   # portrait phone video: stored sideways
                    self.width, self.height = self.height, self.width
                yield DecodedFrame(index, self._timestamp(frame, index), frame=frame,
                                   scalers=scalers, turns=turns, mirror=mirror,
                                   alpha=alpha, aspect=self._aspect, min_side=self._min_side,
                                   damage=DAMAGED if damaged else None)
            if times is not None:             # a segment is never silently short
                listed = len(times) if segment.stop is None else segment.stop - start
                if self.decoded < listed:
                    self.error = (f'the file ended at frame {start + self.decoded}, before '
                                  f'the {start + listed} it lists')
        except (av.FFmpegError, OSError, ValueError) as err:
            self.error = f'decoding stopped after frame {self.decoded}: {_av_reason(err)}'
        self.finished = True

    def _judged_frames(self, packets):
        """``(frame, damaged)`` of each frame the packets decode to, in display order. A
        packet that does not decode is skipped (counted in :attr:`decode_errors`); the frames
        decoded after it up to the next key frame are predicted from pictures the decoder
        never had: FFmpeg fills them with whatever it holds (another shot's pixels). FFmpeg's
        frame threads report the loss a few packets late: every frame not out yet when it is
        reported counts as decoded after it; those out before are whole. Decoding starts
        afresh at a key frame when every lost packet came before it: the pictures decoded
        before it and shown before it that have not come out with it never will (a key frame
        out after a later loss may carry another frame's time: it counts as damaged). A
        picture FFmpeg marks corrupt (concealed) damages the frames shown after it up to the
        next key frame, and the B pictures shown just before it, which predict from it too:
        while the decoder reorders, they are held until the next other picture comes out. A
        concealed B picture counts as one others predict from: H.264's and HEVC's B-pyramids
        make some so, and an MPEG-2 stream that lost a P picture in the demuxer says so only
        on the B pictures before the gap. A packet the demuxer marks corrupt marks a loss in
        or right after the packet after it: an MPEG transport stream whose continuity counter
        jumped lost data the decoder never hears of (part of a picture, or whole ones), and
        its parser hands the mark to the picture before the one cut short, or the one before
        the gap. Such a loss stands past a key frame that may be the one cut short, or the one
        before the gap."""
        import av
        from av.video.frame import PictureType

        context = self._stream.codec_context
        place_of = {}       # a frame not out yet: its presentation time -> its decoding place
        lost_from = None    # the first place that may be lost since decoding last started
        lost_times = 0      # packets with a time that did not decode since then
        lost_untimed = None     # the place of the last one without a time
        marks = []          # places of the packets marked corrupt since decoding last started
        concealed = False   # a picture concealed since the last key frame
        held = []           # B pictures since the last other picture, with their verdict then
        run_concealed = False   # one of those B pictures (or one to come before it) concealed
        try:
            for place, packet in enumerate(packets):
                if packet.is_discard:            # decoded to predict from, never shown
                    self.hidden += 1
                    if packet.pts is not None:
                        # FFmpeg drops its picture after decoding it: a copy not flagged shows
                        # whether it came out concealed (the shown ones after it are built on it)
                        packet = _unflagged(packet)
                        self._hidden_times.add(packet.pts)
                if packet.pts is not None:
                    place_of[packet.pts] = place
                if packet.is_corrupt:
                    marks.append(place)
                    if lost_from is None:
                        lost_from = place + 1
                try:
                    frames = packet.decode()
                except av.FFmpegError as err:    # one damaged packet: skip it, go on
                    self.decode_errors += 1
                    if self.first_decode_error is None:
                        self.first_decode_error = (f'after frame {self.decoded + len(held)}: '
                                                   f'{_av_reason(err)}')
                    first = min(place_of.values(), default=place)
                    lost_from = first if lost_from is None else min(lost_from, first)
                    if packet.pts is None:
                        lost_untimed = place
                    else:
                        lost_times += 1
                    continue
                for frame in frames:
                    # no time: its place is unknown, and it counts as decoded after a loss
                    at = place_of.pop(frame.pts, None)
                    after_loss = lost_from is not None and (at is None or at >= lost_from)
                    if frame.key_frame:
                        concealed = False
                        if after_loss and at is not None:
                            gone = [pts for pts, earlier in place_of.items()
                                    if earlier < at and pts < frame.pts]
                            if len(gone) >= lost_times and (lost_untimed is None
                                                            or lost_untimed < at):
                                lost_from, lost_times, lost_untimed = None, 0, None
                                # what is left from before it never comes out: the lost ones
                                place_of = {pts: later for pts, later in place_of.items()
                                            if later > at}
                                marks = [mark for mark in marks if mark + 1 >= at]
                                lost_from = min(marks) + 1 if marks else None
                                after_loss = lost_from is not None and at >= lost_from
                    concealed = concealed or frame.is_corrupt
                    if frame.pict_type == PictureType.B and context.has_b_frames:
                        run_concealed = run_concealed or frame.is_corrupt
                        held.append((frame, after_loss or concealed))
                        if len(held) > MAX_REORDER:     # not shown before a later picture
                            yield held.pop(0)
                        continue
                    for earlier, verdict in held:
                        yield earlier, verdict or concealed or run_concealed
                    held, run_concealed = [], False
                    yield frame, after_loss or concealed
        except (av.FFmpegError, OSError, ValueError):
            # reading ends here (the caller says why): the held pictures decoded whole
            yield from ((frame, verdict or run_concealed) for frame, verdict in held)
            raise
        yield from ((frame, verdict or run_concealed) for frame, verdict in held)

    def _packets_from(self, target):
        """The stream's packets from a key frame shown no later than ``target`` (a time in
        the stream's time base). Demuxers with an index (MP4, MKV, WebM) seek to the key
        frame itself; those that search the file for a time (MPEG program and transport
        streams: .mpg, .ts, .mts, .m2ts) can land a key frame or more past it, so the time
        asked for steps back (half a second, then doubling) until they do not; the caller
        skips the frames before ``target``. Past the stream's start the last seek stands,
        and the caller's check of the first frame's time ends the segment."""
        container, stream = self._container, self._stream
        first = self._start or 0
        step = max(1, int(0.5 / self._time_base)) if self._time_base else 1
        goal = target
        while True:
            container.seek(goal, stream=stream, backward=True, any_frame=False)
            packets = container.demux(stream)
            # a search can land inside a picture: decoding starts at the next key frame
            key = next((p for p in packets if p.size and p.is_keyframe), None)
            landed = key is not None and key.pts is not None and key.pts <= target
            if landed or goal < first:
                return packets if key is None else itertools.chain([key], packets)
            goal, step = target - step, 2 * step

    def packet_times(self):
        """``(times, key frames)``: each shown packet's presentation time and key-frame flag
        in file order, from demuxing alone (no decoding; those an edit list hides are counted
        in :attr:`hidden`); None for a frame folder, a packet without a time or marked
        corrupt (a transport stream that lost data: read from its start, the mark is seen
        where a seek to a key frame after it would not), or a file that does not demux to its
        end."""
        if self.source.kind != 'file':
            return None
        times, keys = [], []
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:             # the demuxer's end-of-stream packet
                    continue
                if packet.is_discard:
                    self.hidden += 1
                    continue
                if packet.pts is None or packet.is_corrupt:
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
        frames than its header declares, less those an edit list hides (a file cut short or
        damaged), else None: beyond 2 frames and 5 %. A count estimated from durations is no
        claim to fall short of (variable frame rate, or an audio track outlasting the video,
        skew it)."""
        if self.source.kind != 'file' or not self.finished or not self.declared or \
                self._segment_start:
            return None
        shown = self.shown_promise()
        return (shown, self.decoded) if falls_short(shown, self.decoded) else None

    def shown_promise(self):
        """The frames a video file's header declares (None: it declares none), less those an
        edit list hides from the packets met so far (:attr:`hidden`), and for a file with an
        edit list no more than its duration holds: one that ends early has the pictures after
        it left out of the index, unflagged."""
        if not self.declared:
            return None
        shown = self.declared - self.hidden
        stream = self._stream
        if self.hidden and stream.duration and stream.time_base and stream.average_rate:
            shown = min(shown, round(stream.duration * stream.time_base * stream.average_rate))
        return shown

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


def _unflagged(packet):
    """A copy of ``packet`` without its discard flag, for the same stream."""
    import av

    copy = av.Packet(bytes(packet))
    copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
    copy.duration = packet.duration
    copy.is_keyframe, copy.is_corrupt = packet.is_keyframe, packet.is_corrupt
    for side_data in packet.iter_sidedata():      # new parameter sets, where a file has them
        copy.set_sidedata(side_data)
    copy.stream = packet.stream
    return copy


def _tagged_seconds(metadata):
    """Seconds of a Matroska ``DURATION`` tag (``'00:00:16.007000000'``), or None."""
    tag = next((value for key, value in metadata.items() if key.upper() == 'DURATION'), '')
    match = re.fullmatch(r'\s*(\d+):(\d+):(\d+(?:\.\d*)?)\s*', tag)
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


# FFmpeg's AVColorTransferCharacteristic codes and names of the HDR transfers
_HDR_TRANSFERS = {16: 'smpte2084', 18: 'arib-std-b67'}
_BT2020_PRIMARIES = 9


def _orientation(frame):
    """``(turns, mirror)``: the quarter turns counter-clockwise that show ``frame`` as its
    display matrix says (phones store portrait video sideways, with a rotation to apply when
    shown), after a left-right flip when the matrix mirrors (a negative determinant), as
    FFmpeg's player and command line show it."""
    side = frame.side_data
    # PyAV up to 18.1.0 iterates over the side data, 18.1.1 over their types (a Mapping)
    entries = (item if hasattr(item, 'type') else side[item] for item in side)
    matrix = next((np.frombuffer(bytes(data), '<i4') for data in entries
                   if data.type.name == 'DISPLAYMATRIX'), None)
    if matrix is None or len(matrix) != 9:
        return 0, False
    # x' = a x + c y, y' = b x + d y (FFmpeg's display matrix, 16.16 fixed point)
    a, b, c, d = (float(v) for v in matrix[[0, 1, 3, 4]])
    mirror = a * d - b * c < 0
    if mirror:                     # the flip comes first: x -> -x
        a, b = -a, -b
    # av_display_rotation_get: the angle counter-clockwise
    return round(-math.degrees(math.atan2(b, a)) / 90) % 4, mirror


def _hdr_description(context):
    """``'transfer arib-std-b67, BT.2020'`` for an HDR stream (PQ or HLG), else None: its
    pixels are converted without tone mapping."""
    transfer = _HDR_TRANSFERS.get(getattr(context, 'color_trc', None))
    if transfer is None:
        return None
    bt2020 = getattr(context, 'color_primaries', None) == _BT2020_PRIMARIES
    return f'transfer {transfer}' + (', BT.2020' if bt2020 else '')


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
    if reader.video_streams > 1:       # which one was read (FFmpeg's stream index)
        info['video_stream'] = reader._stream.index
    if source.kind == 'frames':
        info['missing_frames'] = source.missing
        info['groundtruth'] = None if source.groundtruth is None \
            else os.path.abspath(source.groundtruth)
    return info
