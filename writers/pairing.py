"""Which frame pairs ``(i, i + gap)`` a video gives: the grid of first frames and each gap.

With a fixed gap K every frame ``i`` with ``i mod K == 0`` starts the pair ``(i, i + K)``.
With a gap range ``[A, B]`` the first frames lie on the grid of step A and each pair's gap is
drawn uniformly from ``[A, B]`` (inclusive) by a generator seeded with ``(seed, CRC-32 of the
video's path relative to SRC)`` (:func:`video_key`), so a video gets the same pairs whatever
else is in SRC and however the work is split.
"""
import os
import zlib

import numpy as np


def video_key(path, root):
    """The CRC-32 of ``path`` relative to ``root`` ('/'-separated): the video's draw seed."""
    # the name's bytes on disk (UTF-8 for UTF-8 names, as before): a name that is not UTF-8
    # is held with surrogate escapes, which str.encode refuses
    return zlib.crc32(os.fsencode(os.path.relpath(path, root).replace(os.sep, '/')))


class PairSchedule:
    """The pairs of one video, decided frame by frame as the frames stream past.

    ``step`` is the grid of first frames, ``[low, high]`` the gaps (a draw per first frame
    when ``high > low``), ``seed`` and ``key`` (:func:`video_key`) seed the draws.
    """

    def __init__(self, step, low, high, seed, key):
        self.step = step
        self.low, self.high = low, high
        self._rng = np.random.default_rng([seed, key]) if high > low else None
        self._waiting = {}   # index_b -> [index_a] of pairs whose second frame is to come

    def is_first(self, index):
        """Does frame ``index`` start a pair?"""
        return index % self.step == 0

    def start(self, index):
        """Frame ``index`` starts a pair: draw its gap (two first frames may then share a
        second frame)."""
        gap = self.low if self._rng is None else int(self._rng.integers(self.low, self.high + 1))
        self._waiting.setdefault(index + gap, []).append(index)

    def skip(self, indices):
        """Make the gap draws of the first frames among ``indices`` (frames before a segment,
        read by another task) without starting their pairs."""
        if self._rng is not None:
            for index in indices:
                if self.is_first(index):
                    self._rng.integers(self.low, self.high + 1)

    def ends_a_pair(self, index):
        """Is frame ``index`` the second frame of some started pair?"""
        return index in self._waiting

    def finish(self, index):
        """The first frames of the pairs whose second frame is ``index`` (each asked once)."""
        return self._waiting.pop(index, ())

    def unfinished(self):
        """How many started pairs still wait for their second frame (at the video's end:
        those whose gap ran past it)."""
        return sum(len(firsts) for firsts in self._waiting.values())
