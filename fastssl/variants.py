"""Training variants: which positives a run learns from, and what its .beton must hold.

- ``mocov2``: two augmented crops of one image (``writers/write_images.py``).
- ``mocov2_frames``: the same on single video frames (``writers/write_video_frames.py``) —
  the baseline the video variants must beat.
- ``fti``: Frame Temporal Invariance — frame i and frame i+k of one video, each with its own
  crop and photometric augment, as query and key (``writers/write_video_pairs.py``).

Every variant feeds the same MoCo v2 objective; they differ in the fields that give views 0
(query) and 1 (key).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    view_fields: tuple   # ((field, number of views), ...) in view order
    required: tuple      # fields the .beton must have
    writer: str          # where such a .beton comes from (for error messages)


VARIANTS = {
    'mocov2': Variant((('image', 2),), ('image',), 'writers/write_images.py'),
    'mocov2_frames': Variant((('image', 2),), ('image', 'video_id'),
                             'writers/write_video_frames.py'),
    'fti': Variant((('frame_a', 1), ('frame_b', 1)), ('frame_a', 'frame_b', 'video_id'),
                   'writers/write_video_pairs.py'),
}
