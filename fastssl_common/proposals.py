"""The proposals contract of a pairs ``.beton`` (docs/data.md, "What is stored"), checked the
same way by ``writers/inspect_pairs.py`` and ``python -m loaders.verify``.

``proposals`` is float32 ``(max_proposals, 9)``; ``num_proposals`` lies in
``0..max_proposals``; each valid row is finite, its boxes lie inside their frames
(``0 <= x0 <= x1 <= width``, the same for y, ``SLACK`` px of rounding allowed) and its
confidence in ``[0, 1]``. Each check returns None, or what is wrong as the end of a sentence
the caller begins (``sample 3's proposals ...``); both callers name the file and the sample.
"""
import numpy as np

from fastssl_common.formats import BOX_OF_FRAME, CONF, NUM_COLUMNS, PROPOSAL_DTYPE

SLACK = 0.5                   # px a stored box may reach past its frame (float rounding)


def array_problem(dtype, shape):
    """Why a ``proposals`` field declared ``dtype`` ``shape`` cannot hold proposal rows."""
    shape = tuple(int(n) for n in shape)
    if np.dtype(dtype) != PROPOSAL_DTYPE or len(shape) != 2 or shape[1] != NUM_COLUMNS:
        return (f'is declared {np.dtype(dtype)} {shape}, not float32 (max_proposals, '
                f'{NUM_COLUMNS})')
    return None


def first_bad_count(counts, max_rows):
    """``(sample, why)`` for the first ``num_proposals`` outside ``0..max_rows``, or None."""
    counts = np.asarray(counts).astype(np.int64)
    wrong = np.flatnonzero((counts < 0) | (counts > max_rows))
    if not len(wrong):
        return None
    return int(wrong[0]), f'is {counts[wrong[0]]}, outside 0..{max_rows}'


def row_problem(rows, frame_sizes):
    """Why the first row of ``rows`` (one sample's valid rows) that breaks the contract does,
    as ``row R [values] why``; None when every row keeps it. ``frame_sizes``:
    ``{frame field: (width, height)}`` of the sample's stored frames."""
    rows = np.asarray(rows, np.float64)
    with np.errstate(invalid='ignore'):      # NaN compares False: refused as not fitting
        fits = (rows[:, CONF] >= 0) & (rows[:, CONF] <= 1)
        outside = {}
        for name, columns in BOX_OF_FRAME.items():
            width, height = frame_sizes[name]
            x0, y0, x1, y1 = rows[:, columns].T
            outside[name] = ~((x0 >= -SLACK) & (x0 <= x1) & (x1 <= width + SLACK)
                              & (y0 >= -SLACK) & (y0 <= y1) & (y1 <= height + SLACK))
            fits &= ~outside[name]
    if fits.all():
        return None
    r = int(np.flatnonzero(~fits)[0])
    row = rows[r]
    if not np.isfinite(row).all():
        problem = 'is not finite'
    elif not 0 <= row[CONF] <= 1:
        problem = f'has confidence {row[CONF]:g}, outside [0, 1]'
    else:
        name = next(name for name in BOX_OF_FRAME if outside[name][r])
        width, height = frame_sizes[name]
        problem = f'has a box outside its {width}x{height} {name}'
    values = ', '.join(f'{v:g}' for v in row)
    return f'row {r} [{values}] {problem}'
