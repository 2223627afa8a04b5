"""The output files of the ``eval.py`` commands, checked the same way for every command
before the work: never a folder, never one of the run's inputs or an input file's sidecar, and
an existing file replaced only when it is an earlier output of the same kind."""
import contextlib
import os

from fastssl_common.atomic import output_folder
from fastssl_common.errors import UserError

# (name, how the file begins): an existing output is replaced only when it is an earlier one
JSON, PNG = ('JSON', b'{'), ('PNG', b'\x89PNG')


def within(path, other):
    """True when ``path`` is ``other`` or lies inside the folder ``other`` (links resolved)."""
    path, other = os.path.realpath(path), os.path.realpath(other)
    return path == other or path.startswith(other.rstrip(os.sep) + os.sep)


def check_output(path, key, inputs=(), kind=JSON):
    """Refuse ``path`` (the value of ``key``; "" = no output) as a run's output file when it is
    a folder, is or lies in one of the run's ``inputs`` (files or folders), is where an input
    file keeps its sidecar (``X.beton.json``: a JSON file, which would pass for an earlier
    output), or exists but is not a ``kind`` file (an earlier output)."""
    if not path:
        return
    if os.path.isdir(path):
        raise UserError(f'{key} {path} is a folder, not a file')
    if path.endswith(os.sep):          # a folder that does not exist yet: found after the work
        raise UserError(f'{key} {path} ends in {os.sep}: give the path of a file')
    for source in filter(None, inputs):
        if within(path, source):
            same = os.path.realpath(path) == os.path.realpath(source)
            where = '' if same else f'inside {source}, '
            raise UserError(f'{key} {path} is {where}an input of this run: give another path')
        if not os.path.isdir(source) and os.path.realpath(path) in {
                os.path.realpath(source + '.json'), os.path.realpath(source) + '.json'}:
            raise UserError(f'{key} {path} is the sidecar of {source}, an input of this run: '
                            f'give another path')
    name, start = kind
    if os.path.exists(path):
        with open(path, 'rb') as handle:
            if not handle.read(64).lstrip().startswith(start):
                raise UserError(f'{key} {path} exists and is not a {name} file: give another '
                                f'path')


@contextlib.contextmanager
def output_file(path, key, inputs=(), kind=JSON):
    """For the block, a run that writes ``path``: :func:`check_output`, then its folder is made
    (or found not writable) before the work and removed again if the block fails while it is
    still empty."""
    check_output(path, key, inputs, kind)
    with output_folder(os.path.dirname(os.path.abspath(path))) if path else \
            contextlib.nullcontext():
        yield
