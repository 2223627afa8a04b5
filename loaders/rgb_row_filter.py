"""The horizontal pass of a resize over one interleaved RGB float row, in 4-lane vectors.

Each output pixel of a horizontal pass reads its taps at its own offset into an interleaved
R, G, B row. LLVM does not vectorise that loop (it would take gathers, which it avoids on
current x86 cores), so written in Numba it runs one float at a time: three quarters of a
224 px view's resize. Here each tap of an output pixel is one ``<4 x float>`` multiply-add,
built with llvmlite: lanes R, G, B and the next source pixel's R, whose sum is junk. The junk
lane lands on the next output pixel's R and is overwritten by it, because pixels are written
in increasing order: ``out`` has one float past its last pixel, and ``row`` one past its last
tap. Sums run over taps in order, in float32, as in the scalar loop they replace.
"""
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .jit import jit

LANES = 4
STRAIGHT_TAPS = 8     # tap counts with a straight-code pass of their own
_VEC = ir.VectorType(ir.FloatType(), LANES)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_FLAGS = ('contract',)   # a multiply-add may fuse, as FASTMATH lets the scalar code do


def _contiguous(ty, dtype, ndim):
    return isinstance(ty, types.Array) and ty.dtype == dtype and ty.ndim == ndim and \
        ty.layout == 'C'


@intrinsic
def filter_rgb_row(typingctx, row, starts, weights, out):
    """``out[3x + c] = sum_t weights[x, t] * row[starts[x] + 3t + c]`` for every output pixel
    x (ascending) and channel c; ``filter_plan`` makes ``starts`` and ``weights``.

    No bounds checks in the loop (a check there keeps LLVM from optimising the caller's
    loops): ``row`` must hold ``row_floats(starts, weights)`` floats, zeros past the data,
    and ``out`` 3 floats per pixel plus one; ``check_buffers`` says so once per plan."""
    if not (_contiguous(row, types.float32, 1) and _contiguous(starts, types.int64, 1)
            and _contiguous(weights, types.float32, 2) and _contiguous(out, types.float32, 1)):
        return None
    sig = types.void(row, starts, weights, out)

    def codegen(context, builder, signature, args):
        row_a, starts_a, weights_a, out_a = (
            context.make_array(ty)(context, builder, value)
            for ty, value in zip(signature.args, args))
        pixels = builder.extract_value(weights_a.shape, 0)
        taps = builder.extract_value(weights_a.shape, 1)
        zero = ir.Constant(_VEC, None)
        broadcast = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)
        vector_at = lambda base, offset: builder.bitcast(  # noqa: E731
            builder.gep(base, [offset], inbounds=True), _VEC.as_pointer())
        def tap_group(start, pixel_weights, group, count, acc):
            for k in range(count):
                t = builder.add(group, ir.Constant(_I64, k))
                w = builder.load(builder.gep(pixel_weights, [t], inbounds=True))
                w = builder.shuffle_vector(builder.insert_element(zero, w, _I32(0)), zero,
                                           broadcast)
                offset = builder.add(start, builder.mul(t, ir.Constant(_I64, 3)))
                taps_rgb = builder.load(vector_at(row_a.data, offset), align=4)
                acc = builder.fadd(acc, builder.fmul(w, taps_rgb, flags=_FLAGS), flags=_FLAGS)
            return acc

        def pass_over_pixels(straight):
            """Every output pixel: ``straight`` taps as straight code, or (None) the taps in
            groups of 4 in a loop."""
            with cgutils.for_range(builder, pixels) as pixel:
                x = pixel.index
                start = builder.load(builder.gep(starts_a.data, [x], inbounds=True))
                pixel_weights = builder.gep(weights_a.data, [builder.mul(x, taps)],
                                            inbounds=True)
                if straight:
                    total = tap_group(start, pixel_weights, ir.Constant(_I64, 0), straight,
                                      zero)
                else:
                    cell = cgutils.alloca_once_value(builder, zero)
                    with cgutils.for_range_slice(builder, ir.Constant(_I64, 0), taps,
                                                 ir.Constant(_I64, LANES)) as (group, _):
                        builder.store(tap_group(start, pixel_weights, group, LANES,
                                                builder.load(cell)), cell)
                    total = builder.load(cell)
                builder.store(total, vector_at(out_a.data,
                                               builder.mul(x, ir.Constant(_I64, 3))), align=4)

        # up to STRAIGHT_TAPS taps (every downscale up to ~3.5x) the loop over a pixel's taps
        # is straight code, one version per count
        done = builder.append_basic_block('done')
        general = builder.append_basic_block('general')
        switch = builder.switch(taps, general)
        for count in range(1, STRAIGHT_TAPS + 1):
            block = builder.append_basic_block(f'taps{count}')
            switch.add_case(ir.Constant(_I64, count), block)
            with builder.goto_block(block):
                pass_over_pixels(count)
                builder.branch(done)
        with builder.goto_block(general):
            pass_over_pixels(None)
            builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()
    return sig, codegen


@jit(inline='always')
def filter_plan(first, count, weights, lo, flip):
    """(starts, taps) of a horizontal pass from ``axis_filter``'s ``first``, ``count`` and
    ``weights`` (source pixels ``lo`` onwards): output pixel x's first tap as a float offset
    into the row, and its weights padded with zeros to the most taps of any pixel (above
    ``STRAIGHT_TAPS``, to a multiple of 4); in mirrored order if ``flip`` (the flip costs
    nothing). A padded tap adds 0 x a finite value: the sums are the unpadded ones."""
    pixels = first.shape[0]
    width = max(count.max(), 1)
    if width > STRAIGHT_TAPS:
        width = -(-width // LANES) * LANES
    starts = np.empty(pixels, np.int64)
    taps = np.zeros((pixels, width), np.float32)
    for x in range(pixels):
        xo = pixels - 1 - x if flip else x
        starts[xo] = 3 * (first[x] - lo)
        for t in range(count[x]):
            taps[xo, t] = weights[x, t]
    return starts, taps


@jit(inline='always')
def row_floats(starts, taps):
    """How long a row ``filter_rgb_row`` reads with this plan must be (floats)."""
    return max(starts[0], starts[starts.shape[0] - 1]) + 3 * taps.shape[1] + 1


@jit(inline='always')
def check_buffers(row, out, starts, taps):
    """ValueError unless ``row`` and ``out`` are long enough for ``filter_rgb_row`` with this
    plan (starts are monotonic, so the two ends bound every read)."""
    if row.shape[0] < row_floats(starts, taps) or out.shape[0] < 3 * starts.shape[0] + 1:
        raise ValueError('filter_rgb_row: row or out too short for the plan')
