"""loaders/ffcv_compat.py: FFCV's page-cache reader no longer mutates Numba's shared array
type, so building a loader leaves the compiled decode of the loaders before it intact; torch
keeps its thread count, also where FFCV was imported first."""
import subprocess
import sys

import numba as nb
import pytest
from ffcv.memory_managers.os_cache import OSCacheManager

import loaders  # noqa: F401  (applies loaders.ffcv_compat)


def test_the_reader_leaves_numbas_shared_array_type_alone():
    shared = nb.uint8[::1]
    reader = OSCacheManager.__new__(OSCacheManager).compile_reader()
    assert shared.mutable and nb.uint8[::1] is shared
    assert reader.signatures[0][1][0] == nb.types.Array(nb.uint8, 1, 'C', readonly=True)


def test_loaders_built_while_others_live_print_no_finalizer_errors(tmp_path, repo, small_beton):
    """The benchmarks' and evaluations' pattern: a loader decodes (compiling its pipeline), a
    second is built while the first lives, then the first is collected."""
    script = tmp_path / 'two_loaders.py'
    script.write_text(f"""
import gc, sys
sys.path.insert(0, {str(repo)!r})
from loaders.eval_loader import make_eval_loader

first = make_eval_loader({str(small_beton)!r}, 8, 32)
for batch in first:
    pass
second = make_eval_loader({str(small_beton)!r}, 8, 32)
for batch in second:
    pass
del first, batch
gc.collect()
print('done')
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and 'done' in done.stdout, done.stderr
    assert 'Exception ignored' not in done.stderr and 'KeyError' not in done.stderr, \
        done.stderr[-2000:]


def test_torch_keeps_its_threads_when_ffcv_was_imported_first(repo):
    """``import ffcv`` before the loaders left torch on FFCV's one thread: training in that
    process (a notebook, a benchmark's in-process run) ran on one core, and its weights
    differed from a run of train.py's."""
    def threads(code):
        shown = subprocess.run([sys.executable, '-c', f'{code}; print(torch.get_num_threads())'],
                               cwd=repo, capture_output=True, text=True, check=True)
        return int(shown.stdout.split()[-1])

    default = threads('import torch')
    if default == 1:
        pytest.skip('torch runs one thread here by default: nothing to restore')
    assert threads('import ffcv, torch; import loaders.ffcv_compat') == default
