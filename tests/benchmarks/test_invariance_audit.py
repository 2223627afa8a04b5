"""benchmarks.invariance: a size whose features cannot fit in memory is one ``error:`` line
naming the option, before anything is timed (it was a numpy MemoryError traceback)."""
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.unit
@pytest.mark.parametrize('option', ['--sizes', '--reference'])
def test_size_beyond_memory_is_one_line(option, assert_one_line_error):
    # 400 TB of float32 features: beyond any machine's memory and address space
    result = subprocess.run([sys.executable, '-m', 'benchmarks.invariance', '--quick',
                             option, '1000000x100000000'],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert_one_line_error(result, f'{option} 1000000x100000000', 'GB of memory')
    assert result.stdout == ''
