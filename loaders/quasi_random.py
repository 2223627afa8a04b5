"""FFCV's quasi-random order as a function of the epoch alone.

FFCV 1.0.2's ``QuasiRandom.sample_order`` shuffles its table of each page's samples in place,
so the order of an epoch depended on every order the loader had drawn before it: asked for
epoch 0 twice, a loader gave two orders, and a resumed run (a fresh loader) did not see the
order the uninterrupted run saw. Here every draw starts from the table as FFCV builds it.
"""
import numpy as np


def draw_from_the_built_table(order):
    """Make ``order`` (FFCV's ``QuasiRandom``) draw each epoch from its table as built."""
    order.prepare_data_structures()       # undo the draw FFCV's Loader made when it was built
    built = order.page_to_samples_array.copy()
    draw = order.sample_order

    def sample_order(epoch):
        np.copyto(order.page_to_samples_array, built)
        return draw(epoch)

    order.sample_order = sample_order
