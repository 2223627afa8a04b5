"""benchmarks.loader stopped by SIGTERM to its whole process group (a scheduler's time limit,
``scancel``) while the torchvision baseline's worker processes run: ``stopped by SIGTERM``,
exit status 143, no traceback, and its temporary folder (JPEGs, .beton) removed. It used to
die at once and leave the folder in /tmp, and once stopped cleanly, torch reported the
workers' deaths as a RuntimeError traceback."""
import os
import re
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO

WORKERS_STARTED = 'warm-up (e) torchvision DataLoader, full MoCo v2 augment'


@pytest.mark.unit
def test_sigterm_to_the_group_stops_cleanly(tmp_path):
    run = subprocess.Popen([sys.executable, '-m', 'benchmarks.loader', '--quick'], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True,
                           env={**os.environ, 'TMPDIR': str(tmp_path)})
    lines = []
    try:
        for line in run.stdout:
            lines.append(line)
            if line.startswith(WORKERS_STARTED):
                os.killpg(run.pid, signal.SIGTERM)
                break
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert any(line.startswith(WORKERS_STARTED) for line in lines), ''.join(lines)
    assert run.returncode == 143, stderr[-3000:]
    assert stderr.strip().splitlines() == ['stopped by SIGTERM'], stderr[-3000:]
    workdir = re.search(r'wrote (\S+)/data\.beton', ''.join(lines)).group(1)
    assert os.path.dirname(workdir) == str(tmp_path)
    assert not os.path.exists(workdir)
