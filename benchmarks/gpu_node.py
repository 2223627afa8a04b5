"""What a GPU node's Python has, and installing what it lacks for the GPU check from a
wheelhouse, without a network and without replacing anything the node's image brings.

``environment`` reads the versions and devices and stops with one line on a combination known
not to work; ``install_missing`` puts the wheels of the missing modules, and of the
requirements of theirs the node lacks, into a private folder (``pip --no-index --no-deps
--target``).
"""
import importlib.metadata
import importlib.util
import os
import platform
import re
import subprocess
import sys
import zipfile
from pathlib import Path

# module the check imports -> distribution that provides it
NEEDED = {'torch': 'torch', 'torchvision': 'torchvision', 'numpy': 'numpy', 'numba': 'numba',
          'ffcv': 'ffcv', 'fastargs': 'fastargs', 'cv2': 'opencv-contrib-python-headless',
          'yaml': 'pyyaml', 'tensorboard': 'tensorboard', 'PIL': 'pillow',
          'skimage': 'scikit-image', 'tqdm': 'tqdm', 'pytest': 'pytest'}
MIN_TORCH = (2, 3)


class CheckError(Exception):
    """Why the check cannot run here, in one line."""


# ---------------------------------------------------------------------------- environment

def version_tuple(text):
    return tuple(int(part) for part in re.findall(r'\d+', text)[:2])


def environment(dry_run):
    """Versions and devices; raises CheckError for a combination known not to work."""
    if sys.version_info < (3, 10):
        raise CheckError(f'Python {platform.python_version()}: fastssl needs 3.10 or newer')
    try:
        import torch
    except ImportError as err:
        raise CheckError(f"this Python has no torch ({err}); run the check with the GPU "
                         f"image's Python") from None
    if version_tuple(torch.__version__) < MIN_TORCH:
        raise CheckError(f"torch {torch.__version__}: fastssl needs torch >= "
                         f"{'.'.join(map(str, MIN_TORCH))}")
    info = {'python': platform.python_version(), 'executable': sys.executable,
            'torch': torch.__version__, 'cuda': torch.version.cuda,
            'cudnn': torch.backends.cudnn.version(), 'cpus': os.cpu_count(),
            'numpy': None, 'numba': None, 'gpus': [], 'driver': None}
    try:
        import numpy
        info['numpy'] = numpy.__version__
    except ImportError:
        pass
    try:
        import numba
        info['numba'] = numba.__version__
    except ImportError as err:
        # numba refuses a numpy newer than it was built for, deep inside its import
        installed = distribution_version('numba')
        if installed:
            raise CheckError(f"numba {installed} does not run with numpy {info['numpy']}: "
                             f"{str(err).splitlines()[0]}") from None
    if torch.cuda.is_available():
        info['gpus'] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info['driver'] = driver_version()
    elif not dry_run:
        raise CheckError(f"no CUDA GPU is visible (torch {torch.__version__}, CUDA build "
                         f"{torch.version.cuda or 'none'}): run on a GPU node, or add --dry-run")
    return info


def driver_version():
    try:
        out = subprocess.run(['nvidia-smi', '--query-gpu=driver_version',
                              '--format=csv,noheader'], capture_output=True, text=True,
                             timeout=30).stdout.split()
        return out[0] if out else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def distribution_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------- install

def normalise(name):
    return re.sub(r'[-_.]+', '_', name).lower()


def wheel_index(wheelhouse):
    """{normalised distribution name: wheel path} of a folder of wheels."""
    index = {}
    for wheel in sorted(Path(wheelhouse).glob('*.whl')):
        index[normalise(wheel.name.split('-')[0])] = wheel
    return index


def requirements_of(wheel):
    """Distribution names a wheel requires (extras left out; markers kept when they hold);
    CheckError naming a wheel that is not one (a copy to the node cut short)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            metadata = next((archive.read(n).decode() for n in archive.namelist()
                             if n.endswith('.dist-info/METADATA')), None)
    except (OSError, zipfile.BadZipFile) as err:
        raise CheckError(f'{wheel} is not a readable wheel ({err}): copy the wheelhouse '
                         f'again') from None
    if metadata is None:
        raise CheckError(f'{wheel} is not a wheel (no .dist-info/METADATA): copy the '
                         f'wheelhouse again')
    names = []
    for line in metadata.splitlines():
        if not line.startswith('Requires-Dist:'):
            continue
        requirement = line.split(':', 1)[1].strip()
        name, _, marker = requirement.partition(';')
        if 'extra' in marker or not marker_holds(marker):
            continue
        names.append(re.match(r'[A-Za-z0-9._-]+', name.strip()).group(0))
    return names


def check_wheelhouse(wheelhouse):
    """CheckError naming the first wheel of ``wheelhouse`` (a folder, or none there) that
    is not a readable wheel: before anything runs, not at the install."""
    for wheel in wheel_index(wheelhouse).values():
        requirements_of(wheel)


def marker_holds(marker):
    if not marker.strip():
        return True
    try:
        from packaging.markers import Marker
    except ImportError:  # no packaging: take the requirement, an extra wheel does no harm
        return True
    return Marker(marker).evaluate()


def plan_install(missing, wheelhouse):
    """Wheels for the ``missing`` distributions and every requirement of theirs that this
    Python lacks; raises CheckError naming a wheel the wheelhouse lacks."""
    index = wheel_index(wheelhouse)
    chosen, todo = {}, list(missing)
    while todo:
        name = normalise(todo.pop())
        if name in chosen:
            continue
        if name not in index:
            raise CheckError(f'{wheelhouse} has no wheel for {name}, which this Python lacks '
                             f'(make gpu-check-bundle, or make wheelhouse, puts it there)')
        chosen[name] = index[name]
        todo += [req for req in requirements_of(index[name]) if distribution_version(req) is None]
    return list(chosen.values())


def install_missing(wheelhouse, target):
    """Install what the check needs and this Python lacks into ``target``; -> wheel names."""
    missing = [dist for module, dist in NEEDED.items()
               if importlib.util.find_spec(module) is None]
    if not missing:
        return []
    if not Path(wheelhouse).is_dir():
        raise CheckError(f"this Python lacks {', '.join(missing)} and the wheelhouse "
                         f"{wheelhouse} does not exist (make gpu-check-bundle)")
    wheels = plan_install(missing, wheelhouse)
    result = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-index',
                             '--no-deps', '--no-compile', '--target', str(target),
                             *map(str, wheels)], capture_output=True, text=True)
    if result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines() or ['(no output)']
        raise CheckError(f"pip could not install {', '.join(w.name for w in wheels)} into "
                         f"{target}: {lines[-1]}")
    return [wheel.name for wheel in wheels]
