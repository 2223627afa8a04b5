"""Where each sample's reserved proposal storage lies in a pairs ``.beton``, to fill in place."""
import numpy as np

from fastssl_common.beton_file import check_size
from fastssl_common.errors import UserError
from fastssl_common.formats import NUM_PROPOSALS, PROPOSALS


def proposal_slots(path):
    """Byte offsets in the .beton ``path`` of each sample's reserved proposal storage:
    ``(proposals_offsets, count_offsets)``, two int64 arrays of length num_samples.

    The Region Tracker writes ``float32 (max_proposals, 9)`` rows at ``proposals_offsets[i]``
    and the row count as a little-endian int64 at ``count_offsets[i]`` (e.g. with
    ``np.memmap``), in place: the frames are not copied.
    """
    from ffcv.reader import Reader
    from ffcv.types import HeaderType

    check_size(path)    # offsets into a file cut short would point past its end
    reader = Reader(path)
    names = reader.field_names
    if PROPOSALS not in names or NUM_PROPOSALS not in names:
        raise UserError(f'{path} has no reserved proposal fields (written with '
                        f'--max-proposals 0?)')
    meta_type = reader.metadata_type
    start = HeaderType.itemsize + reader.field_descriptors.nbytes
    rows = start + np.arange(reader.num_samples, dtype=np.int64) * meta_type.itemsize
    count_field = meta_type.names[names.index(NUM_PROPOSALS)]
    proposals_field = meta_type.names[names.index(PROPOSALS)]
    counts = rows + meta_type.fields[count_field][1]
    proposals = reader.metadata[proposals_field].astype(np.int64)
    return proposals, counts
