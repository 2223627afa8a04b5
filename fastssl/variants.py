"""Training variants: which positives a run learns from, and what its .beton must hold.

- ``mocov2``: two augmented crops of one image (``writers/write_images.py``).
- ``mocov2_frames``: the same on single video frames (``writers/write_video_frames.py``) —
  the baseline the video variants must beat.
- ``fti``: Frame Temporal Invariance — frame i and frame i+k of one video, each with its own
  crop and photometric augment, as query and key (``writers/write_video_pairs.py``).
- ``rt``: Region Tracker — crops of one tracked region proposal in frame i and in frame i+k
  (``writers/write_video_pairs.py --proposals N``); pairs without a surviving track are
  skipped.
- ``fti_rt``: both: four views from two decodes, a frame term and a region term.

Every variant feeds MoCo v2 InfoNCE terms. ``view_fields`` tells the loader which field
renders which view: ``(field, n)`` gives the next n full-frame views, ``(field, ((view,
kind), ...))`` names the global view numbers (random stream and output position) and their
kind, 'full' or 'region'. ``terms`` pairs the views: (name, query view, key view); the name
picks the term's weight (``moco.frame_weight`` for image/frame terms, ``moco.region_weight``
for region terms) and its TensorBoard tag ``train/loss_<name>``.
"""
from dataclasses import dataclass

from fastssl_common.formats import (
    FRAME_A,
    FRAME_B,
    IMAGE,
    IMAGES,
    REGION_FIELDS,
    VIDEO_FRAMES,
    VIDEO_ID,
    VIDEO_PAIRS,
)


@dataclass(frozen=True)
class Variant:
    view_fields: tuple   # see the module docstring
    terms: tuple         # ((name, query view, key view), ...)
    required: tuple      # fields the .beton must have
    writer: str          # where such a .beton comes from (for error messages)

    @property
    def n_views(self):
        return 1 + max(max(q, k) for _, q, k in self.terms)

    @property
    def uses_regions(self):
        return any(name == 'region' for name, _, _ in self.terms)


PAIRS = (FRAME_A, FRAME_B, VIDEO_ID)
TRACKED = f'{VIDEO_PAIRS.writer} --proposals N'
VARIANTS = {
    'mocov2': Variant(((IMAGE, 2),), (('image', 0, 1),), (IMAGE,), IMAGES.writer),
    'mocov2_frames': Variant(((IMAGE, 2),), (('frame', 0, 1),), (IMAGE, VIDEO_ID),
                             VIDEO_FRAMES.writer),
    'fti': Variant(((FRAME_A, 1), (FRAME_B, 1)), (('frame', 0, 1),), PAIRS, VIDEO_PAIRS.writer),
    'rt': Variant(((FRAME_A, ((0, 'region'),)), (FRAME_B, ((1, 'region'),))),
                  (('region', 0, 1),), PAIRS + REGION_FIELDS, TRACKED),
    'fti_rt': Variant(((FRAME_A, ((0, 'full'), (2, 'region'))),
                       (FRAME_B, ((1, 'full'), (3, 'region')))),
                      (('frame', 0, 1), ('region', 2, 3)), PAIRS + REGION_FIELDS, TRACKED),
}
