"""Look at the frame pairs of a pairs ``.beton`` and their tracked regions before training.

    python writers/inspect_pairs.py OUT.beton --out DIR [--pairs 16] [--seed 0] [--per-sheet 4]
        [--height 180] [--format png|jpg]

Writes to DIR:

* ``sheet_00.png``, ``sheet_01.png``, … (``--format jpg``: JPEG): contact sheets of
  ``--pairs`` random pairs (drawn with ``--seed``, shown in sample order), ``--per-sheet`` a
  sheet, each a row ``frame_a | frame_b`` scaled to ``--height`` px, with the tracked boxes
  drawn (row ``r`` of ``proposals`` gets the same colour and number in both frames) and a
  caption: sample, video, frame indices, tracks;
* ``summary.json`` (also printed): number of pairs, pairs with tracks, tracks-per-pair
  histogram, box sizes (width, height in stored pixels and area as a fraction of the frame;
  quartiles, for frame a and frame b), confidence quartiles, gap (``index_b - index_a``)
  histogram, which samples the sheets show, and from the writer's sidecar
  (``PAIRS.beton.json``, when present) the proposal ranking and the foreground share: the
  share of kept tracks that overlap moving foreground as the writer's background subtractor
  saw it (:mod:`writers.region_pairs`; None without tracked proposals or sidecar). A
  sidecar that records another file (its format, sample count, fields, size or proposal
  rows differ: copied or left beside this one) is one ``error:`` line, not that file's
  figures; so is a sidecar that cannot be read or is no JSON object.

The file is read with FFCV's ``Reader`` (its field table, per-sample metadata and allocation
table); the JPEG frames and proposal arrays are read at the offsets it gives, so frames of
different sizes need no common decoder. Bad input (missing file, not a ``.beton``, not a pairs
``.beton``) is one ``error:`` line and exit code 2; so is a damaged one, naming the sample and
suggesting ``python -m loaders.verify FILE``: an allocation that is missing, belongs to another
sample or lies outside the data pages (checked at open for every sample), a ``num_proposals``
outside ``0..max_proposals`` (every sample), a proposal row that is not finite or breaks the
contract (``0 <= x0 <= x1 <= width`` and the same for y in both frames, confidence in
``[0, 1]``; every sample with tracks), a frame that does not decode to its stated size (the
frames drawn), a page of the drawn samples' data whose SHA-256 differs from the one the
sidecar records (damage that still decodes). Nothing is written to ``--out`` then (an
earlier run's output stays as it was).
With ``--format jpg``, a sheet more than 65,500 px high or wide (libjpeg's limit; e.g.
``--per-sheet 40 --height 2160``) is refused before anything is drawn, naming the options.
"""
import hashlib
import json
import os
import shutil

import cv2
import numpy as np

from fastssl_common.atomic import (
    output_folder,
    remove_stale,
    stop_signals_held,
    temporary_name,
    write_errors,
    write_json,
)
from fastssl_common.beton_file import (
    check_integrity_entry,
    check_layout,
    check_own_sidecar,
    not_a_beton,
    outside_data_pages,
    own_allocations,
)
from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError, path_argument, require_file, run_cli
from fastssl_common.formats import (
    BOX_OF_FRAME,
    CONF,
    FRAME_A,
    FRAME_B,
    INDEX_A,
    INDEX_B,
    NUM_COLUMNS,
    NUM_PROPOSALS,
    PROPOSALS,
    REGION_FIELDS,
    VIDEO_ID,
    VIDEO_PAIRS,
    load_sidecar,
    sidecar_path,
)
from fastssl_common.numbers import check_number
from fastssl_common.proposals import array_problem, first_bad_count, row_problem
from writers.boxes import box_area
from writers.writer_common import MIN_RESOLUTION

PAIR_FIELDS = (FRAME_A, FRAME_B, INDEX_A, INDEX_B, VIDEO_ID)
CAPTION = 22                  # px of caption above each row
SPACER = 6                    # px between the two frames
ROW_GAP = 4                   # px of white below each row
MAX_ROW_HEIGHT = 2160          # px: a 4K row; taller sheets only cost memory
JPEG_MAX_SIDE = 65500          # px: libjpeg's limit (the format's is 65535)
JPG, RAW = 0, 1               # FFCV's RGBImageField storage modes


def damaged(path, what, cause='damaged file'):
    """The one-line error for a stored value that only damage explains."""
    return UserError(f'{path}: {what} ({cause}? check it with: python -m loaders.verify '
                     f'{path})')


class PairsFile:
    """Random access to the samples of a pairs ``.beton`` through FFCV's Reader.

    Every stored value it reads is checked before use (see the module doc): damage is one
    UserError naming the file and the sample, never a traceback or a wrong picture."""

    def __init__(self, path):
        require_file(path, 'pairs file')
        layout = check_layout(path)    # a file cut short would show other samples' bytes
        from ffcv.reader import Reader  # slow import (Numba): after the cheap checks
        try:
            reader = Reader(path)
        except Exception as err:  # ffcv raises assorted errors on foreign files
            raise not_a_beton(path, type(err).__name__) from None
        missing = [name for name in PAIR_FIELDS if name not in reader.field_names]
        if missing:
            raise UserError(f"{path} is not a pairs .beton (no field {missing[0]}; fields: "
                            f"{', '.join(reader.field_names)})")
        self.path, self.reader, self.layout = path, reader, layout
        self.num_samples = int(reader.num_samples)
        self.column = {name: reader.metadata[f'f{i}']
                       for i, name in enumerate(reader.field_names)}
        self.has_proposals = set(REGION_FIELDS) <= set(reader.field_names)
        self._data = np.memmap(path, np.uint8, mode='r')
        table = reader.alloc_table
        self._table = table[np.argsort(table['ptr'], kind='stable')]
        self._sizes = {}            # field -> each sample's allocation size (bytes)
        self._checked = set()       # samples whose proposal rows passed _check_rows
        for name in (FRAME_A, FRAME_B):
            self._sizes[name] = self._allocations(name, self.column[name]['data_ptr'])
        if self.has_proposals:
            handler = reader.handlers[PROPOSALS]
            problem = array_problem(handler.dtype, handler.shape)
            if problem:
                raise UserError(f'{path}: field {PROPOSALS} {problem}')
            self.proposal_shape, self.proposal_dtype = handler.shape, handler.dtype
            sizes = self._sizes[PROPOSALS] = self._allocations(PROPOSALS,
                                                               self.column[PROPOSALS])
            wrong = np.flatnonzero(sizes != handler.element_size)
            if len(wrong):
                raise damaged(path, f"sample {wrong[0]}'s {PROPOSALS} holds "
                                    f"{sizes[wrong[0]]} bytes, not the "
                                    f"{handler.element_size} of its declared array")
            bad = first_bad_count(self.column[NUM_PROPOSALS], int(self.proposal_shape[0]))
            if bad:
                sample, why = bad
                raise damaged(path, f"sample {sample}'s {NUM_PROPOSALS} {why}")

    def _allocations(self, name, pointers):
        """Each sample's allocation size for field ``name`` whose data starts at
        ``pointers[i]``; UserError naming the first sample whose pointer is not the start of
        an allocation of its own inside the data pages (FFCV's loaders read the same table)."""
        pointers = np.asarray(pointers, np.uint64)
        at, found = own_allocations(self._table, pointers)
        if not found.all():
            sample = int(np.flatnonzero(~found)[0])
            raise damaged(self.path, f"sample {sample}'s {name} points at no allocation of "
                                     f"its own", 'damaged metadata or allocation table')
        sizes = self._table['size'][at]
        outside = outside_data_pages(self.layout, pointers, sizes)
        if outside.any():
            sample = int(np.flatnonzero(outside)[0])
            raise damaged(self.path, f"sample {sample}'s {name} (bytes {pointers[sample]}.."
                                     f"{int(pointers[sample]) + int(sizes[sample])}) lies "
                                     f"outside the data pages ({self.layout.data_start}.."
                                     f"{self.layout.alloc_table_ptr})")
        return sizes

    def value(self, name, index):
        return int(self.column[name][index])

    def check_pages(self, integrity, samples):
        """UserError when a page holding data of ``samples`` differs from the SHA-256 that
        ``integrity`` (the sidecar's entry; None: none recorded) gives it: damage that still
        decodes would be drawn as if it were stored so. Only those pages are hashed;
        ``python -m loaders.verify`` checks the whole file."""
        if not integrity:
            return
        page_size, hashes = integrity['page_size'], integrity['page_sha256']
        checked = set()
        for index in samples:
            for name, sizes in self._sizes.items():
                pointer = self.column[name][index]
                start = int(pointer if name == PROPOSALS else pointer['data_ptr'])
                end = start + max(int(sizes[index]), 1)
                for page in range(start // page_size, (end - 1) // page_size + 1):
                    if page in checked:
                        continue
                    first = page * page_size
                    data = self._data[first:first + page_size]
                    if page >= len(hashes) or \
                            hashlib.sha256(data).hexdigest() != hashes[page]:
                        raise damaged(self.path, f"bytes {first}..{first + len(data)}, the "
                                                 f"page of sample {index}'s {name}, differ "
                                                 f"from the SHA-256 its sidecar records")
                    checked.add(page)

    def frame(self, name, index):
        """Frame ``name`` of sample ``index`` as BGR uint8 (FFCV stores JPEG, or raw RGB)."""
        meta = self.column[name][index]
        start = int(meta['data_ptr'])
        data = np.asarray(self._data[start:start + int(self._sizes[name][index])])
        width, height, mode = int(meta['width']), int(meta['height']), int(meta['mode'])
        where = f"sample {index}'s {name}"
        if mode == JPG:
            try:
                image = cv2.imdecode(data, cv2.IMREAD_COLOR)
            except cv2.error:           # OpenCV refuses some broken streams by raising
                image = None
        elif mode == RAW:                # exactly height x width x 3 bytes
            shape = (height, width, 3)
            image = data.reshape(shape)[..., ::-1] if data.size == np.prod(shape) else None
        else:
            raise damaged(self.path, f'{where} has storage mode {mode}, neither jpg nor raw')
        if image is None or not image.size:
            raise damaged(self.path, f'sample {index} {name} is not a readable image')
        if image.shape[:2] != (height, width):
            raise damaged(self.path, f'{where} decodes to {image.shape[1]}x{image.shape[0]}, '
                                     f'its metadata states {width}x{height}')
        return np.ascontiguousarray(image)

    def tracks(self, index):
        """The valid rows of sample ``index``'s proposals (``k x 9``; none without them)."""
        if not self.has_proposals:
            return np.zeros((0, NUM_COLUMNS), np.float32)
        start = int(self.column[PROPOSALS][index])
        count = int(np.prod(self.proposal_shape))
        rows = np.frombuffer(self._data[start:start + count * self.proposal_dtype.itemsize],
                             self.proposal_dtype).reshape(self.proposal_shape)
        rows = rows[:self.value(NUM_PROPOSALS, index)]      # in range: checked at open
        if index not in self._checked:
            self._check_rows(index, rows)
            self._checked.add(index)
        return rows

    def _check_rows(self, index, rows):
        """UserError naming sample ``index`` and its first row that is not finite or breaks
        the proposals contract (:mod:`fastssl_common.proposals`)."""
        sizes = {name: self.size(name, index) for name in BOX_OF_FRAME}
        problem = row_problem(rows, sizes)
        if problem:
            raise damaged(self.path, f"sample {index}'s {PROPOSALS} {problem}")

    def size(self, name, index):
        meta = self.column[name][index]
        return int(meta['width']), int(meta['height'])


def colour(row):
    """A distinct BGR colour per track row (golden-ratio hues)."""
    hue = int((row * 0.618034 % 1) * 180)
    return tuple(int(c) for c in cv2.cvtColor(np.uint8([[[hue, 230, 255]]]),
                                              cv2.COLOR_HSV2BGR)[0, 0])


def draw_pair(pairs, index, height):
    """One contact-sheet row: caption, ``frame_a | frame_b`` at ``height`` px with boxes."""
    rows = pairs.tracks(index)
    panels = []
    for name, columns in BOX_OF_FRAME.items():
        image = pairs.frame(name, index)
        scale = height / image.shape[0]
        width = scaled_width(image.shape[1], image.shape[0], height)
        image = cv2.resize(image, (width, height),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        for r, row in enumerate(rows):
            x0, y0, x1, y1 = (row[columns] * scale).tolist()
            # exclusive x1/y1: the last covered pixel is x1 - 1
            cv2.rectangle(image, (round(x0), round(y0)), (round(x1) - 1, round(y1) - 1),
                          colour(r), 2)
            cv2.putText(image, str(r), (round(x0) + 3, round(y0) + 13),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour(r), 1, cv2.LINE_AA)
        panels.append(image)
    body = np.hstack([panels[0], np.full((height, SPACER, 3), 255, np.uint8), panels[1]])
    caption = np.full((CAPTION, body.shape[1], 3), 255, np.uint8)
    text = (f'sample {index}  video {pairs.value(VIDEO_ID, index)}  frames '
            f'{pairs.value(INDEX_A, index)} -> {pairs.value(INDEX_B, index)}  '
            f'tracks {len(rows)}')
    cv2.putText(caption, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.vstack([caption, body])


def scaled_width(width, frame_height, height):
    """The width of a ``width x frame_height`` frame drawn ``height`` px high."""
    return max(1, round(width * (height / max(frame_height, 1))))


def stack_rows(rows):
    """Rows of different widths, left-aligned on a white sheet."""
    width = max(r.shape[1] for r in rows)
    return np.vstack([np.pad(r, ((0, ROW_GAP), (0, width - r.shape[1]), (0, 0)),
                             constant_values=255) for r in rows])


def check_jpeg_fits(pairs, shown, per_sheet, height):
    """UserError before anything is drawn when a sheet (from the frame sizes the metadata
    states) would be larger than the JPEG encoder takes: OpenCV fails only once it is drawn."""
    rows = min(per_sheet, len(shown))
    tall = rows * (CAPTION + height + ROW_GAP)
    if tall > JPEG_MAX_SIDE:
        raise UserError(f'--format jpg: a sheet of {rows} pairs (--per-sheet {per_sheet}) at '
                        f'--height {height} would be {tall} px tall, more than the '
                        f'{JPEG_MAX_SIDE} px a JPEG can be; use --format png, or a lower '
                        f'--per-sheet or --height')
    wide = max(SPACER + sum(scaled_width(*pairs.size(name, int(i)), height)
                            for name in BOX_OF_FRAME) for i in shown)
    if wide > JPEG_MAX_SIDE:
        raise UserError(f'--format jpg: a pair at --height {height} would be {wide} px wide, '
                        f'more than the {JPEG_MAX_SIDE} px a JPEG can be; use --format png '
                        f'or a lower --height')


def quartiles(values):
    values = np.asarray(values, np.float64)
    if not len(values):
        return None
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return dict(zip(('min', 'q1', 'median', 'q3', 'max'), np.round(q, 4).tolist()))


def summarise(pairs):
    """Counts over every sample of the file (see the module docstring)."""
    n = pairs.num_samples
    gaps = pairs.column[INDEX_B].astype(np.int64) - pairs.column[INDEX_A].astype(np.int64)
    per_pair = np.array([len(pairs.tracks(i)) for i in range(n)], np.int64)
    sizes, confidence = {}, []
    for end, (name, columns) in zip('ab', BOX_OF_FRAME.items()):
        boxes, frame_areas = [], []
        for i in np.flatnonzero(per_pair):
            rows = pairs.tracks(i)
            boxes.append(rows[:, columns])
            width, height = pairs.size(name, i)
            frame_areas.append(np.full(len(rows), width * height))
            if end == 'a':
                confidence.append(rows[:, CONF])
        boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4))
        areas = np.concatenate(frame_areas) if frame_areas else np.zeros(0)
        sizes[end] = {'width': quartiles(boxes[:, 2] - boxes[:, 0]),
                      'height': quartiles(boxes[:, 3] - boxes[:, 1]),
                      'area_fraction': quartiles(box_area(boxes) / np.maximum(areas, 1))}
    return {
        'file': os.path.abspath(pairs.path), 'pairs': n,
        'has_proposals': pairs.has_proposals,
        'pairs_with_tracks': int(np.count_nonzero(per_pair)),
        'tracks': int(per_pair.sum()),
        'tracks_per_pair': {str(k): int(v)
                            for k, v in zip(*np.unique(per_pair, return_counts=True))},
        'box_sizes': sizes,
        'confidence': quartiles(np.concatenate(confidence) if confidence else []),
        'gap': {str(k): int(v) for k, v in zip(*np.unique(gaps, return_counts=True))},
    }


def read_sidecar(pairs):
    """The writer's sidecar (:func:`sidecar_path`) of the :class:`PairsFile` ``pairs`` as a
    dict, None where there is none; UserError for one that cannot be read, is no JSON object,
    has an ``integrity`` entry of the wrong shape or records another file."""
    try:
        sidecar_file, sidecar = load_sidecar(pairs.path)
    except UserError as err:
        raise UserError(f'{err}; remove it to inspect {pairs.path} without it') from None
    if sidecar is None:
        return None
    check_integrity_entry(sidecar.get('integrity'), sidecar_file)
    # a sidecar copied or left beside another file would report that file's tracks as these
    check_own_sidecar(pairs.path, pairs.layout, sidecar, sidecar_file)
    other = other_pairs_file(pairs, sidecar)
    if other:
        raise UserError(f'sidecar {sidecar_file} records another file than {pairs.path} '
                        f'({other}): put its own sidecar beside it, or remove this one')
    return sidecar


def sidecar_foreground(pairs, sidecar):
    """``(ranking, foreground)`` from the writer's sidecar dict ``sidecar`` (None: none) of
    the :class:`PairsFile` ``pairs``: how the proposals were ranked and the foreground share
    of the kept tracks; None for what it does not say (no sidecar, no tracked proposals,
    written before the ranking existed)."""
    sidecar_file = sidecar_path(pairs.path)
    proposals = sidecar.get('proposals') if isinstance(sidecar, dict) else None
    tracks = proposals.get('tracks') if isinstance(proposals, dict) else None
    foreground = tracks.get('foreground') if isinstance(tracks, dict) else None
    ranking = proposals.get('ranking') if isinstance(proposals, dict) else None
    number = (int, float)
    if foreground is not None and not (
            isinstance(foreground, dict) and 'share' in foreground
            and isinstance(foreground['share'], (*number, type(None)))
            and isinstance(foreground.get('tracks_judged'), int)):
        raise UserError(f"sidecar {sidecar_file}: invalid 'proposals.tracks.foreground' (damaged "
                        f"or edited?)")
    return (ranking if isinstance(ranking, str) else None), foreground


def other_pairs_file(pairs, sidecar):
    """How the sidecar dict ``sidecar`` records another pairs file than ``pairs`` where their
    sample counts and fields agree (:func:`check_own_sidecar`): its format, size or proposal
    rows (what it does not record is not compared), or None."""
    integrity, proposals = sidecar.get('integrity'), sidecar.get('proposals')
    recorded = {
        'format': sidecar.get('format'),
        'integrity.size': integrity.get('size') if isinstance(integrity, dict) else None,
        'proposals.max_proposals': (proposals.get('max_proposals')
                                    if isinstance(proposals, dict) else None),
    }
    actual = {'format': VIDEO_PAIRS.sidecar, 'integrity.size': pairs.layout.size,
              'proposals.max_proposals': (int(pairs.proposal_shape[0]) if pairs.has_proposals
                                          else 0)}
    for key, value in recorded.items():
        if value is not None and value != actual[key]:
            return f"its '{key}' is {value!r}, the file's {actual[key]!r}"
    return None


def inspect_pairs(path, out, *, pairs=16, seed=0, per_sheet=4, height=180, image_format='png'):
    """Write the contact sheets and ``summary.json`` to ``out``; returns the summary dict."""
    path, out = path_argument(path, 'path'), path_argument(out, 'out')   # pathlib.Paths too
    # the checked values: NumPy's integers would fail in summary.json
    pairs, per_sheet = (check_number(value, f'--{flag}', 1)
                        for value, flag in ((pairs, 'pairs'), (per_sheet, 'per-sheet')))
    height = check_number(height, '--height', MIN_RESOLUTION, MAX_ROW_HEIGHT)
    seed = check_number(seed, '--seed', 0)
    if image_format not in ('png', 'jpg'):
        raise UserError('--format must be png or jpg')
    data = PairsFile(path)
    sidecar = read_sidecar(data)
    summary = summarise(data)
    summary['proposal_ranking'], summary['foreground'] = sidecar_foreground(data, sidecar)
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(data.num_samples, min(pairs, data.num_samples), replace=False))
    data.check_pages((sidecar or {}).get('integrity'), shown)
    if image_format == 'jpg':
        check_jpeg_fits(data, shown, per_sheet, height)
    with output_folder(out):    # a folder it created goes again if rendering fails
        # rendered in a hidden folder inside ``out`` first: an error part way leaves ``out``
        # as it was. Inside, not beside it: ``out`` may be writable where its parent is not,
        # or lie on another file system (a link to scratch), where a rename cannot reach
        remove_stale(out, 'tmp')
        staging = temporary_name(os.path.join(out, 'sheets'))
        try:
            with write_errors(out, out, (staging, out)):
                os.makedirs(staging, exist_ok=True)
                sheets = []
                for number, start in enumerate(range(0, len(shown), per_sheet)):
                    sheet = stack_rows([draw_pair(data, int(i), height)
                                        for i in shown[start:start + per_sheet]])
                    name = f'sheet_{number:02d}.{image_format}'
                    try:
                        ok, encoded = cv2.imencode(f'.{image_format}', sheet)
                    except cv2.error:       # older OpenCV raises where 5.x returns False
                        ok = False
                    if not ok:
                        raise UserError(f'cannot encode {name} ({sheet.shape[1]}x'
                                        f'{sheet.shape[0]} px) as {image_format}')
                    # not ndarray.tofile: where it cannot reserve the space first it raises
                    # an OSError without the OS's error number, which reads as a bug
                    with open(os.path.join(staging, name), 'wb') as handle:
                        handle.write(encoded)
                    sheets.append(name)
                summary.update(shown=shown.tolist(), sheets=sheets, seed=seed)
                # a stop part way would leave this run's sheets beside an earlier run's summary
                with stop_signals_held():
                    # an earlier run's sheets would pass for this run's (fewer, other format)
                    for old in os.listdir(out):
                        if old.startswith('sheet_') and old.endswith(('.png', '.jpg')):
                            os.remove(os.path.join(out, old))
                    for name in sheets:
                        os.replace(os.path.join(staging, name), os.path.join(out, name))
                    # last: marks a complete run
                    write_json(os.path.join(out, 'summary.json'), summary)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return summary


def build_parser():
    parser = ArgParser(prog='inspect_pairs.py', description=(
        'Contact sheets of random frame pairs of a pairs .beton with their tracked regions '
        'drawn, and a summary (pairs, tracks per pair, box sizes, gaps).'))
    parser.add_argument('beton', metavar='PAIRS.beton', help='written by write_video_pairs.py')
    parser.add_argument('--out', required=True, metavar='DIR', help='folder for the sheets')
    parser.add_argument('--pairs', type=int, default=16, help='pairs to show (default 16)')
    parser.add_argument('--seed', type=int, default=0, help='which pairs (default 0)')
    parser.add_argument('--per-sheet', type=int, default=4, help='pairs per sheet (default 4)')
    parser.add_argument('--height', type=int, default=180,
                        help=f'row height in px, {MIN_RESOLUTION} to {MAX_ROW_HEIGHT} '
                             '(default 180)')
    parser.add_argument('--format', default='png', choices=('png', 'jpg'),
                        help='sheet image format (default png)')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    summary = inspect_pairs(args.beton, args.out, pairs=args.pairs, seed=args.seed,
                            per_sheet=args.per_sheet, height=args.height,
                            image_format=args.format)
    printed = {k: v for k, v in summary.items() if k not in ('shown',)}
    print(json.dumps(printed, indent=2))
    foreground = summary['foreground']
    if foreground and foreground['share'] is not None:
        print(f"kept tracks on moving foreground: {100 * foreground['share']:.1f}% of "
              f"{foreground['tracks_judged']} judged (ranking: {summary['proposal_ranking']})")
    print(f"sheets: {', '.join(os.path.join(args.out, s) for s in summary['sheets'])}")
    return 0



def cli():
    """The console entry point: ``main`` on the command line's arguments, a user error as one
    line and exit status 2 (:func:`fastssl_common.errors.run_cli`)."""
    run_cli(main, stop_on_sigterm=True)


if __name__ == '__main__':
    cli()
