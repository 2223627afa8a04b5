"""The stored formats: each ``.beton`` kind's fields, the proposal row layout, sidecar ids.

The writers (``writers/``) write these, the loaders (``loaders/``) and the trainer
(``fastssl/``) read them; all of them take the names from here, so a field is named once.

* :data:`IMAGES` (``writers/write_images.py``): ``image``, ``label``;
* :data:`VIDEO_FRAMES` (``writers/write_video_frames.py``): ``image``, ``video_id``,
  ``frame_index``, ``label``;
* :data:`VIDEO_PAIRS` (``writers/write_video_pairs.py``): ``frame_a``, ``frame_b``,
  ``video_id``, ``index_a``, ``index_b``, ``label``, then (unless ``--max-proposals 0``) the
  Region Tracker's ``proposals`` and ``num_proposals``.

**Proposal rows.** ``proposals`` is ``float32 (max_proposals, 9)``; row ``r`` is one tracked
region ``[xa0, ya0, xa1, ya1, xb0, yb0, xb1, yb1, conf]``: ``row[BOX_A]`` its box in
``frame_a``, ``row[BOX_B]`` its box in ``frame_b`` (stored pixels, x1/y1 exclusive),
``row[CONF]`` the track's confidence; rows ``[0, num_proposals)`` are valid
(:mod:`writers.region_pairs` states the contract in full).

Each writer also leaves a JSON sidecar ``OUT.beton.json`` whose ``format`` is the kind's
``sidecar`` id (:func:`sidecar_path` finds it); the rendered invariance sets'
``manifest.json`` has its own id.
"""
import json
import os
from dataclasses import dataclass

import numpy as np

from .errors import UserError, not_a_file

# ---------------------------------------------------------------------------- field names

IMAGE = 'image'
LABEL = 'label'
VIDEO_ID = 'video_id'
FRAME_INDEX = 'frame_index'
FRAME_A = 'frame_a'
FRAME_B = 'frame_b'
INDEX_A = 'index_a'
INDEX_B = 'index_b'
PROPOSALS = 'proposals'
NUM_PROPOSALS = 'num_proposals'

# ---------------------------------------------------------------------------- proposal rows

PROPOSAL_COLUMNS = ('xa0', 'ya0', 'xa1', 'ya1', 'xb0', 'yb0', 'xb1', 'yb1', 'confidence')
NUM_COLUMNS = len(PROPOSAL_COLUMNS)
BOX_A = slice(0, 4)             # x0, y0, x1, y1 in frame_a
BOX_B = slice(4, 8)             # x0, y0, x1, y1 in frame_b
CONF = 8
PROPOSAL_DTYPE = np.dtype('<f4')
BOX_OF_FRAME = {FRAME_A: BOX_A, FRAME_B: BOX_B}
REGION_FIELDS = (PROPOSALS, NUM_PROPOSALS)


def proposal_shape(max_proposals):
    """The ``proposals`` field's array shape for ``max_proposals`` rows."""
    return (int(max_proposals), NUM_COLUMNS)


# ---------------------------------------------------------------------------- .beton kinds

@dataclass(frozen=True)
class Field:
    """One stored field: its name, the FFCV field class that stores it, how (e.g. JPEG), and
    what it means; ``doc`` is the line the sidecar's ``fields`` table gives it."""
    name: str
    ffcv_type: str
    meaning: str
    stored: str = ''

    @property
    def doc(self):
        return f"{self.ffcv_type}{' ' + self.stored if self.stored else ''}: {self.meaning}"


@dataclass(frozen=True)
class BetonFormat:
    """A ``.beton`` kind: its fields in file order, its sidecar id and the script that writes
    it; ``optional`` fields may be absent (written on request)."""
    sidecar: str
    fields: tuple
    writer: str
    optional: tuple = ()

    @property
    def names(self):
        """Every field name, in file order."""
        return tuple(f.name for f in self.fields)

    @property
    def required(self):
        """The names every file of this kind has."""
        return tuple(n for n in self.names if n not in self.optional)

    def fields_doc(self, names=None):
        """``{name: doc}`` of the fields (of ``names`` only, if given), in file order."""
        return {f.name: f.doc for f in self.fields if names is None or f.name in names}


_INDEX = 'IntField'
IMAGES = BetonFormat(
    sidecar='fastssl-images/1', writer='writers/write_images.py',
    fields=(Field(IMAGE, 'RGBImageField', 'the image (or box crop), longest side <= '
                  'max_resolution', '(JPEG or raw)'),
            Field(LABEL, _INDEX, 'class index, -1 for unlabelled images')))
VIDEO_FRAMES = BetonFormat(
    sidecar='fastssl-video-frames/1', writer='writers/write_video_frames.py',
    fields=(Field(IMAGE, 'RGBImageField', 'the frame, longest side <= max_resolution',
                  '(JPEG)'),
            Field(VIDEO_ID, _INDEX, "index into 'videos'"),
            Field(FRAME_INDEX, _INDEX, '0-based index of the frame in its video'),
            Field(LABEL, _INDEX, "= video_id (for loaders that read 'label')")))
VIDEO_PAIRS = BetonFormat(
    sidecar='fastssl-video-pairs/1', writer='writers/write_video_pairs.py',
    fields=(Field(FRAME_A, 'RGBImageField', 'frame index_a, longest side <= max_resolution',
                  '(JPEG)'),
            Field(FRAME_B, 'RGBImageField', 'frame index_b, same size as frame_a', '(JPEG)'),
            Field(VIDEO_ID, _INDEX, "index into 'videos'"),
            Field(INDEX_A, _INDEX, '0-based index of the first frame in its video'),
            Field(INDEX_B, _INDEX, 'index of the second frame (index_a + gap)'),
            Field(LABEL, _INDEX, "= video_id (for loaders that read 'label')"),
            Field(PROPOSALS, 'NDArrayField', "tracked regions, see 'proposals'",
                  f'float32 (max_proposals, {NUM_COLUMNS})'),
            Field(NUM_PROPOSALS, _INDEX, "rows of 'proposals' in use (0: no tracked region)")),
    optional=REGION_FIELDS)

# each writer's sidecar id (``format``) -> its .beton kind
KINDS = {kind.sidecar: kind for kind in (IMAGES, VIDEO_FRAMES, VIDEO_PAIRS)}

# ---------------------------------------------------------------------------- sidecars
def sidecar_path(beton):
    """The sidecar of the ``.beton`` at ``beton``: ``beton + '.json'``, or, where ``beton`` is a
    symbolic link with no sidecar beside it, the one beside the file it links to (a dataset
    linked into place, ``ln -s /datasets/x.beton data/``, keeps its sidecar there)."""
    own = beton + '.json'
    if os.path.lexists(own) or not os.path.islink(beton):
        return own
    return os.path.realpath(beton) + '.json'


# JSON's names for the Python types json.load gives (messages about a file's wrong types)
JSON_NAMES = {dict: 'object', list: 'array', str: 'string', int: 'number', float: 'number',
              bool: 'boolean', type(None): 'null'}


def load_sidecar(beton):
    """``(sidecar file, its JSON object)`` of the ``.beton`` at ``beton`` (:func:`sidecar_path`);
    the object is None where there is no sidecar. UserError naming the sidecar when it is not
    a readable file holding a JSON object (a pipe is not opened: that would wait for a
    writer)."""
    sidecar = sidecar_path(beton)
    problem = not_a_file(sidecar)
    if problem == 'does not exist':
        return sidecar, None
    if problem:
        raise UserError(f'sidecar {sidecar} {problem}')
    try:
        with open(sidecar, encoding='utf-8') as handle:
            content = json.load(handle)
    except OSError as err:
        raise UserError(f'cannot read sidecar {sidecar}: {err.strerror}') from None
    except UnicodeDecodeError:
        raise UserError(f'cannot read sidecar {sidecar}: not UTF-8 text') from None
    except ValueError as err:
        raise UserError(f'cannot read sidecar {sidecar}: not JSON ({err})') from None
    if not isinstance(content, dict):
        raise UserError(f'sidecar {sidecar} is no JSON object but a JSON '
                        f'{JSON_NAMES.get(type(content), "value")} (damaged or edited?)')
    return sidecar, content


# ---------------------------------------------------------------------------- rendered sets

RENDERED_FORMAT = 'fastssl-rendered-invariance/1'
RENDERED_LABEL = 'rendered data'
RENDERED_MANIFEST = 'manifest.json'
# Largest image side the renderer makes (and a manifest may claim): an image is ray-cast at
# 2x2 supersampling in float64 arrays, a few GB of memory per image at 4096 px; 1024 px is
# 8 x the default and well past what the study uses.
RENDERED_SIZE_MAX = 1024
