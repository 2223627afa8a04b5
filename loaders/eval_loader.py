"""Single-view evaluation loader: centre crop (224/256 of the short side) + resize, labels.

The kNN monitor iterates one such loader at every evaluation of a run, so its batch buffers
are kept across iterations (``kept_buffers.py``) as the pair loader's are. Images that do not
decode come out black and are counted in the loader's ``decode_failures``
(``centre_crop_decoder.py``).
"""
from ffcv.fields.basics import IntDecoder
from ffcv.loader import OrderOption
from ffcv.transforms import ToTensor

from fastssl_common.errors import UserError
from fastssl_common.formats import IMAGE, LABEL
from fastssl_common.numbers import check_number

from .centre_crop_decoder import CentreCropDecoder
from .kept_buffers import KeptBuffersLoader
from .pair_loader import open_beton
from .work_sharing import check_threads


def make_eval_loader(path, batch_size, resolution, num_workers=1, os_cache=True):
    """Yields (images uint8 (B, H, W, 3), labels (B,)) in file order, keeping every sample;
    its ``decode_failures`` counts the images that did not decode (black), every epoch.
    Both live in FFCV's ring buffer, valid until the next batch is drawn: clone what you
    keep (``labels.clone()``)."""
    batch_size = check_number(batch_size, 'batch_size', 1)
    resolution = check_number(resolution, 'resolution', 1)  # 0 aborts in OpenCV
    num_workers = check_threads(num_workers, 'num_workers')
    reader = open_beton(path, required_fields=(IMAGE, LABEL))
    decoder = CentreCropDecoder((resolution, resolution), ratio=224 / 256)
    pipelines = {IMAGE: [decoder, ToTensor()],
                 LABEL: [IntDecoder(), ToTensor()]}
    for name in reader.handlers:
        if name not in pipelines:
            pipelines[name] = None
    if reader.num_samples == 0:
        raise UserError(f'{path} holds no samples')
    loader = KeptBuffersLoader(path, batch_size=batch_size, num_workers=num_workers,
                               order=OrderOption.SEQUENTIAL, pipelines=pipelines,
                               drop_last=False, os_cache=os_cache)
    loader.decode_failures = decoder.failures
    return loader
