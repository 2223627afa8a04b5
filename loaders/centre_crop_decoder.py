"""The evaluation loader's centre crop: stock FFCV's, with images that do not decode counted.

FFCV's ``CenterCropRGBImageDecoder`` ignores the return code of ``imdecode``: a stored JPEG
damaged after it was written leaves the decode buffer holding the image of the sample that
used it before, and kNN, the linear probe and the training kNN monitor evaluate that image in
its place. This op is stock's decode line for line (the same ``imdecode``, ``get_center_crop``
and INTER_AREA ``resize_crop``: intact images give the same bits), except that a sample whose
``imdecode`` fails comes out black and is recorded in a
:class:`loaders.decode_failures.DecodeFailures`, and that the crop keeps at least one pixel
(:func:`centre_crop`).
"""
import numpy as np
from ffcv.fields.rgb_image import IMAGE_MODES, CenterCropRGBImageDecoder
from ffcv.libffcv import imdecode, resize_crop
from ffcv.pipeline.compiler import Compiler

from .decode_failures import DecodeFailures


def centre_crop(height, width, _, ratio):
    """Stock's ``get_center_crop`` (the centred square of ``ratio`` times the shorter side),
    at least 1 px a side: stock's is 0 px for an image 1 px high or wide, and OpenCV's resize
    of an empty crop aborts the whole process."""
    side = max(int(ratio * min(height, width)), 1)
    return (height - side) // 2, (width - side) // 2, side, side


class CentreCropDecoder(CenterCropRGBImageDecoder):
    """``CenterCropRGBImageDecoder(output_size, ratio)`` whose damaged images are black and
    counted in ``failures`` (a new :class:`DecodeFailures` unless given)."""

    def __init__(self, output_size, ratio, failures=None):
        super().__init__(output_size, ratio)
        self.failures = failures if failures is not None else DecodeFailures()

    def generate_code(self):
        jpg = IMAGE_MODES['jpg']
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        imdecode_c = Compiler.compile(imdecode)
        resize_crop_c = Compiler.compile(resize_crop)
        get_crop_c = Compiler.compile(centre_crop)
        record_failures = Compiler.compile(self.failures.make_recorder())
        scale, ratio = self.scale, self.ratio

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp_storage = my_storage
            failed = np.zeros(len(batch_indices), np.bool_)
            for dst_ix in my_range(len(batch_indices)):
                source_ix = batch_indices[dst_ix]
                field = metadata[source_ix]
                image_data = mem_read(field['data_ptr'], storage_state)
                height = np.uint32(field['height'])
                width = np.uint32(field['width'])

                if field['mode'] == jpg:
                    temp_buffer = temp_storage[dst_ix]
                    # damaged since written: the buffer still holds another sample's image
                    failed[dst_ix] = imdecode_c(image_data, temp_buffer, height, width, height,
                                                width, 0, 0, 1, 1, False, False) != 0
                    selected_size = 3 * height * width
                    temp_buffer = temp_buffer.reshape(-1)[:selected_size]
                    temp_buffer = temp_buffer.reshape(height, width, 3)
                else:
                    temp_buffer = image_data.reshape(height, width, 3)

                if failed[dst_ix]:
                    destination[dst_ix][:] = 0
                else:
                    i, j, h, w = get_crop_c(height, width, scale, ratio)
                    resize_crop_c(temp_buffer, i, i + h, j, j + w, destination[dst_ix])
            if failed.any():
                record_failures(failed, batch_indices)
            return destination[:len(batch_indices)]

        decode.is_parallel = True
        return decode
