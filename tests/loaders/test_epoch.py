"""EpochCell: compiled code reads the epoch current when it runs, not when it was compiled."""
import gc
import weakref

from ffcv.pipeline.compiler import Compiler

from loaders.epoch import EpochCell


def test_set_and_get():
    cell = EpochCell(4)
    assert cell.get() == 4
    cell.set(9)
    assert cell.get() == 9
    assert EpochCell().get() == 0


def test_compiled_reader_follows_the_cell():
    cell = EpochCell(2)
    read = Compiler.compile(cell.make_reader())
    assert read() == 2
    cell.set(7)
    assert read() == 7  # the same compiled function, a new value


def test_reader_keeps_the_cell_alive():
    """The reader holds only the cell's address in its code; it must keep the cell itself."""
    cell = EpochCell(5)
    reader = cell.make_reader()
    alive = weakref.ref(cell)
    del cell
    gc.collect()
    assert alive() is not None and Compiler.compile(reader)() == 5
    del reader
    gc.collect()
    assert alive() is None
