"""The self-contained ffcv wheel (``make wheelhouse``; ``make install`` builds it first):
installed with ``--no-deps`` into a fresh folder next to this Python's numpy, numba and
torch, it loads its C extension, decodes a real JPEG to the pixels OpenCV's libjpeg-turbo
decoder gives, its extension resolves libturbojpeg and OpenCV inside ``ffcv.libs/``, and
importing it compiles no Numba dict."""
import importlib.metadata
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
WHEELHOUSE = REPO / 'dist' / 'wheelhouse'

DECODE = r"""
import sys, numpy as np, cv2, ffcv
from ffcv.libffcv import imdecode
assert ffcv.__file__.startswith(sys.argv[2]), ffcv.__file__
data = np.fromfile(sys.argv[1], dtype=np.uint8)
reference = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
h, w = reference.shape[:2]
decoded = np.zeros((h, w, 3), np.uint8)
imdecode(data, decoded, h, w, h, w, 0, 0, 1, 1, False, False)
error = decoded.astype(float) - reference
print(int(np.abs(error).max()), float(10 * np.log10(255 ** 2 / np.mean(error ** 2))))
"""


@pytest.fixture(scope='module')
def installed_wheel(module_tmp):
    wheels = sorted(WHEELHOUSE.glob(f"ffcv-{importlib.metadata.version('ffcv')}-*.whl"))
    assert wheels, f'no ffcv wheel in {WHEELHOUSE}: `make install` or `make wheelhouse` builds it'
    site = module_tmp.mktemp('site')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-index', '--no-deps',
                    '--target', str(site), str(wheels[-1])], check=True)
    return wheels[-1], site


def test_wheel_is_abi3_and_asks_for_no_second_opencv(installed_wheel):
    wheel, site = installed_wheel
    assert re.search(r'-cp310-abi3-manylinux_2_\d+_', wheel.name), wheel.name
    metadata = next(site.glob('ffcv-*.dist-info')).joinpath('METADATA').read_text()
    requires = re.findall(r'^Requires-Dist: ([A-Za-z0-9_.-]+)', metadata, re.M)
    assert 'numba' in requires and not [r for r in requires if r.startswith('opencv')]


def test_extension_resolves_its_libraries_inside_the_wheel(installed_wheel):
    _, site = installed_wheel
    extension, = (site / 'ffcv').glob('_libffcv*.so')
    ldd = subprocess.run(['ldd', str(extension)], capture_output=True, text=True,
                         check=True).stdout
    for library in ('libturbojpeg', 'libopencv_core', 'libopencv_imgproc'):
        line, = [line for line in ldd.splitlines() if library in line]
        resolved = Path(line.split('=>')[1].split('(')[0].strip()).resolve()
        assert resolved.parent == (site / 'ffcv.libs').resolve(), line
    assert 'not found' not in ldd, ldd


def test_imdecode_matches_opencv_on_a_real_jpeg(installed_wheel, tmp_path):
    from skimage import data
    _, site = installed_wheel
    jpeg = tmp_path / 'astronaut.jpg'
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format='JPEG', quality=90)
    jpeg.write_bytes(buffer.getvalue())
    env = {**os.environ, 'PYTHONPATH': str(site)}
    result = subprocess.run([sys.executable, '-c', DECODE, str(jpeg), str(site)],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # ffcv asks libjpeg-turbo for its fast integer IDCT (TJFLAG_FASTDCT), OpenCV for the
    # accurate one (OpenCV and Pillow agree exactly): observed max 6 levels, PSNR 45.6 dB
    worst, psnr = result.stdout.split()[-2:]
    assert int(worst) <= 8 and float(psnr) > 40, (worst, psnr)


IMAGE_MODES = r"""
import sys, ffcv
from ffcv.fields.rgb_image import IMAGE_MODES
assert ffcv.__file__.startswith(sys.argv[1]), ffcv.__file__
print(type(IMAGE_MODES).__name__, sorted(IMAGE_MODES.items()))
"""


def test_import_compiles_no_numba_dict(installed_wheel, tmp_path):
    # upstream builds IMAGE_MODES as a numba.typed.Dict, which compiled Numba's dict methods
    # at every import (about 3 s of every command's start); it is only read from Python
    _, site = installed_wheel
    env = {**os.environ, 'PYTHONPATH': str(site)}
    result = subprocess.run([sys.executable, '-c', IMAGE_MODES, str(site)],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split('\n')[-2] == "dict [('jpg', 0), ('raw', 1)]", result.stdout
