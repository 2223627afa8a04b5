"""The one command for a GPU node: install what this Python lacks from a wheelhouse, prove the
CUDA half of fastssl, measure it, and write ``DIR/gpu_check.json`` and ``DIR/gpu_check.md``.

    python -m benchmarks.gpu_check --out DIR [--wheelhouse PATH] [--data DIR]
        [--budget-s 480] [--dry-run]

Run it from a copy of this repository. Stages, each timed (one that would overrun
``--budget-s`` is skipped, and the report says so):

1. **environment**: Python, torch (+ CUDA, cuDNN), numpy, numba, the GPUs and the driver; a
   combination known not to work stops here with one line.
2. **install**: the modules the check needs that this Python lacks (ffcv, fastargs, ...) and
   the requirements of theirs it lacks, from ``--wheelhouse`` (default
   ``dist/gpu_check/wheels``, else ``dist/wheelhouse``) into a private folder with
   ``pip --no-index --no-deps``: nothing is downloaded, and the image's own packages (torch,
   numpy, numba, OpenCV, ...) are never replaced.
3. **cuda tests**: ``pytest -m cuda tests/test_cuda.py`` — GPU augment vs CPU op, no host
   sync in a bf16 step, bf16 / fp16 steps train, channels_last, ``torch.compile``, an NCCL DDP
   step, GPU checkpoint resumed on the CPU (a compile failure for a missing compiler is MISS).
4. **train step**: ``benchmarks/train_step.py`` — MoCo v2 ResNet-50 and ResNet-18 at 224 px
   (fp32 NCHW, channels-last + bf16, + fp16, + ``torch.compile`` when the budget allows), the
   supervised ceiling, the GPU augment's share, the largest batch, host syncs, the top
   kernels; and end to end, the real FFCV loader (all cores) + GPU augment for ``mocov2``
   (its own JPEGs) and ``fti`` / ``fti_rt`` (``DATA/pairs.beton``, tracked proposals).

Targets are marked PASS or MISS in the report; the exit status is 1 when a stage or a target
failed, or a stage was skipped for the budget. ``--dry-run`` runs every stage at tiny size on
the CPU (``make test-e2e`` does), so the check cannot rot between GPU runs.
``make gpu-check-bundle`` prepares what to copy to the node (wheels + data, under 64 MiB).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from benchmarks.gpu_node import CheckError, check_wheelhouse, environment, install_missing
from fastssl_common.atomic import atomic_path
from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError, run_cli

REPO = Path(__file__).resolve().parent.parent
# seconds each stage takes on one H100/H200 node (the --budget-s plan); compile adds its own.
# Seen on an H200: install 1, cuda tests 131, train step 246 (its step then 2x slower)
ESTIMATE_S = {'install': 30, 'cuda tests': 150, 'train step': 240, 'compile': 120}
DRY_RUN_ESTIMATE_S = {'install': 5, 'cuda tests': 60, 'train step': 60, 'compile': 0}
# what each stage writes in OUT, and the report: all removed when a run starts (a stage that
# is skipped or dies must not leave an earlier run's file to pass for this run's)
STAGE_OUTPUTS = {'cuda tests': ('cuda_tests.xml',), 'train step': ('train_step.json',
                                                                   'profile.txt')}
REPORT_FILES = ('gpu_check.json', 'gpu_check.md')


# ---------------------------------------------------------------------------- stages

def python_env(site):
    """Environment for the stages' subprocesses: the repository, then what we installed."""
    paths = [str(REPO), str(site), os.environ.get('PYTHONPATH', '')]
    return {**os.environ, 'PYTHONPATH': os.pathsep.join(p for p in paths if p),
            'PYTHONUNBUFFERED': '1'}


def run_logged(cmd, env, log, timeout):
    """Run ``cmd``, appending its output to ``log``; -> (exit code or 'timeout', seconds)."""
    start = time.perf_counter()
    with open(log, 'a', encoding='utf-8') as handle:
        handle.write(f"\n$ {' '.join(map(str, cmd))}\n")
        handle.flush()
        try:
            code = subprocess.run([str(c) for c in cmd], stdout=handle,
                                  stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = 'timeout'
    return code, time.perf_counter() - start


def remove_outputs(out, names):
    """Remove the files ``names`` from ``out`` (absent is fine); UserError if one cannot go."""
    for name in names:
        try:
            (out / name).unlink(missing_ok=True)
        except OSError as err:
            raise UserError(f"--out {out}: cannot remove the earlier run's {name} "
                            f"({err.strerror})") from None


def cuda_tests(env, out, log, timeout, dry_run):
    """pytest -m cuda; -> rows {test, status: PASS/FAIL/SKIP/MISS, detail}."""
    xml = out / 'cuda_tests.xml'
    remove_outputs(out, STAGE_OUTPUTS['cuda tests'])    # never report an earlier run's tests
    env = {**env, 'FASTSSL_DRY_RUN': '1'} if dry_run else env
    code, _ = run_logged([sys.executable, '-m', 'pytest', '-q', '-m', 'cuda', '-p',
                          'no:cacheprovider', f'--junitxml={xml}', 'tests/test_cuda.py'],
                         env, log, timeout)
    return cuda_test_rows(xml, code)


def cuda_test_rows(xml, code):
    """The rows of pytest's JUnit XML ``xml`` given pytest's exit ``code`` ('timeout' when it
    was stopped): a FAIL row when it reported no test or ended other than 0 or 1."""
    rows = junit_rows(xml)
    if not rows:
        why = ('and reported no test' if rows is not None else
               'leaving unreadable XML' if xml.exists() else 'before reporting')
        return [{'test': 'tests/test_cuda.py', 'status': 'FAIL',
                 'detail': f'pytest ended with {code} {why} (see gpu_check.log)'}]
    if code not in (0, 1):      # 1 is failed tests (in the rows); anything else went wrong
        rows.append({'test': 'tests/test_cuda.py', 'status': 'FAIL',
                     'detail': f'pytest ended with {code} (see gpu_check.log)'})
    return rows


def junit_rows(xml):
    """The test cases of pytest's JUnit XML as rows; None when it is missing or unreadable
    (pytest killed while writing it)."""
    try:
        tree = ElementTree.parse(xml)
    except (OSError, ElementTree.ParseError):
        return None
    rows = []
    for case in tree.iter('testcase'):
        status, detail = 'PASS', ''
        for child in case:
            if child.tag in ('failure', 'error'):
                status, detail = 'FAIL', (child.get('message') or '').splitlines()[0][:200]
            elif child.tag == 'skipped':
                xfail = child.get('type') == 'pytest.xfail'
                status = 'MISS' if xfail else 'SKIP'
                detail = (child.get('message') or '')[:200]
        rows.append({'test': case.get('name'), 'status': status, 'detail': detail})
    return rows


def train_step(env, out, log, timeout, pairs, dry_run, with_compile):
    """benchmarks/train_step.py; -> its JSON result (None if it did not finish)."""
    result_json = out / 'train_step.json'
    cmd = [sys.executable, '-m', 'benchmarks.train_step', '--json', result_json,
           '--profile', out / 'profile.txt']
    if dry_run:
        cmd += ['--quick', '--device', 'cpu']
    elif not with_compile:
        cmd += ['--modes', 'fp32', 'bf16_cl', 'fp16_cl']
    if pairs:
        cmd += ['--loader-betons', f'fti={pairs}', f'fti_rt={pairs}']
    remove_outputs(out, STAGE_OUTPUTS['train step'])   # never report an earlier run's figures
    code, _ = run_logged(cmd, env, log, timeout)
    if not result_json.exists():
        return None, code
    # stopped at the budget, it still leaves the sections it finished (complete: false)
    return json.loads(result_json.read_text()), code


# ---------------------------------------------------------------------------- targets

def targets(cuda_rows, step, gpu):
    """[{target, value, verdict}] from the stages' results."""
    rows = [{'target': f"cuda test {r['test']}", 'value': r['detail'] or r['status'],
             'verdict': r['status']} for r in cuda_rows]
    if step is None:
        return rows
    for ratio in step.get('ratios', []):
        verdict = 'n/a' if ratio['pass'] is None else 'PASS' if ratio['pass'] else 'MISS'
        rows.append({'target': ratio['label'] + (f" >= {ratio['target']}"
                                                 if ratio['target'] else ''),
                     'value': f"{ratio['value']:.2f}x", 'verdict': verdict})
    pre = step.get('preprocess')
    if pre:
        rows.append({'target': 'GPU augment + normalise < 10 % of the step',
                     'value': f"{100 * pre['fraction']:.1f} %",
                     'verdict': ('PASS' if pre['fraction'] < 0.10 else 'MISS') if gpu
                     else 'n/a'})
    for loader in step.get('loaders', []):
        judged = gpu and loader['variant'] in ('mocov2', 'fti_rt')
        verdict = ('PASS' if loader['data_wait_fraction'] < 0.05 else 'MISS') if judged else 'n/a'
        rows.append({'target': f"{loader['variant']} end to end ({loader['arch']}): data wait "
                               f"< 5 % of the step",
                     'value': f"{100 * loader['data_wait_fraction']:.1f} % at "
                              f"{loader['pairs_per_s']:.0f} pairs/s",
                     'verdict': verdict})
    profiled = step.get('profile')
    if profiled and profiled.get('kernel_share') is not None:
        rows.append({'target': 'profiled steps: kernel time / wall time (well below 100 %: '
                               'the host does not keep the GPU fed)',
                     'value': f"{100 * profiled['kernel_share']:.0f} %",
                     'verdict': 'n/a'})
    return rows


def write_text(path, text):
    """Write ``text`` to ``path`` whole or not at all (a full disk is one error line)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_report(out, report):
    write_text(out / 'gpu_check.json', json.dumps(report, indent=2, default=str))
    env = report['environment']
    lines = ['# fastssl GPU check', '',
             f"- GPU: {', '.join(env.get('gpus') or []) or 'none (dry run)'}; driver "
             f"{env.get('driver')}; {env.get('cpus')} CPUs",
             f"- Python {env.get('python')}, torch {env.get('torch')} (CUDA {env.get('cuda')}, "
             f"cuDNN {env.get('cudnn')}), numpy {env.get('numpy')}, numba {env.get('numba')}",
             f"- installed from the wheelhouse: {', '.join(report['installed']) or 'nothing'}",
             '', '| stage | status | seconds |', '|---|---|---|']
    lines += [f"| {s['stage']} | {s['status']} | {s['seconds']:.0f} |" for s in report['stages']]
    lines += ['', '| target | value | verdict |', '|---|---|---|']
    lines += [f"| {t['target']} | {t['value']} | {t['verdict']} |" for t in report['targets']]
    write_text(out / 'gpu_check.md', '\n'.join(lines) + '\n')


# ---------------------------------------------------------------------------- main

def default_wheelhouse():
    bundle = REPO / 'dist' / 'gpu_check' / 'wheels'
    return bundle if bundle.is_dir() else REPO / 'dist' / 'wheelhouse'


def default_data():
    return REPO / 'dist' / 'gpu_check' / 'data'


def build_parser():
    parser = ArgParser(prog='python -m benchmarks.gpu_check',
                       description=__doc__.split('\n\n')[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='folder for the report and logs')
    parser.add_argument('--wheelhouse', default=None,
                        help='wheels to install from (default: dist/gpu_check/wheels, '
                             'else dist/wheelhouse)')
    parser.add_argument('--data', default=None,
                        help='folder holding pairs.beton for the fti / fti_rt runs (default: '
                             'dist/gpu_check/data; those runs are left out if it has none)')
    parser.add_argument('--budget-s', type=float, default=480,
                        help='skip a stage that would end after this many seconds')
    parser.add_argument('--dry-run', action='store_true',
                        help='every stage at tiny size on the CPU')
    return parser


def checked_data(text):
    """An explicit ``--data`` as an absolute path; UserError unless it holds pairs.beton."""
    if not text:        # Path('') is the current folder
        raise UserError('--data needs a folder name, got an empty one')
    data = Path(text).resolve()
    if not data.is_dir():
        raise UserError(f'--data {text}: ' + ('is a file, not a folder' if data.exists()
                                              else 'no such folder'))
    if not (data / 'pairs.beton').is_file():
        raise UserError(f'--data {text}: holds no pairs.beton (make gpu-check-bundle '
                        f'writes one)')
    return data


def checked_pairs(data):
    """``DATA/pairs.beton`` for the fti / fti_rt runs, or None when ``data`` holds none;
    UserError unless it is a whole .beton of frame pairs with regions (a copy cut short).
    Found by the train step instead, it would fail that whole stage after the cuda tests."""
    from fastssl.variants import VARIANTS
    from fastssl_common.beton_file import check_layout

    pairs = data / 'pairs.beton'
    if not pairs.is_file():
        return None
    again = 'make gpu-check-bundle writes it; copy it to the node again'
    try:
        layout = check_layout(str(pairs))
    except UserError as err:
        raise UserError(f'{err} ({again})') from None
    except OSError as err:
        raise UserError(f'cannot read {pairs} ({err.strerror})') from None
    missing = [name for name in VARIANTS['fti_rt'].required if name not in layout.field_names]
    if missing:
        raise UserError(f"{pairs} has no {', '.join(missing)} field: the fti / fti_rt runs need "
                        f'frame pairs with region proposals ({again})')
    return pairs


def output_folder(text):
    """``--out`` as an absolute path (the stages run in the repository root), created if need
    be; UserError naming it when it cannot be a folder we write in."""
    if not text:        # Path('') is the current folder, whose files a run would remove
        raise UserError('--out needs a folder name, got an empty one')
    out = Path(text).resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f'--out {text}: is a file, not a folder')
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f'--out {text}: cannot create the folder ({err.strerror})') from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f'--out {text}: the folder is not writable')
    return out


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not (math.isfinite(args.budget_s) and args.budget_s > 0):
        raise UserError(f'--budget-s {args.budget_s:g}: must be a finite number of seconds > 0')
    # absolute: the stages' subprocesses run in the repository root, not in our folder
    data = default_data() if args.data is None else checked_data(args.data)
    pairs = checked_pairs(data)
    wheelhouse = Path(args.wheelhouse).resolve() if args.wheelhouse else default_wheelhouse()
    if args.wheelhouse is not None and not wheelhouse.is_dir():
        # checked even where nothing needs installing: a mistyped path says so on every node
        raise UserError(f'--wheelhouse {args.wheelhouse}: ' + (
            'is a file, not a folder' if wheelhouse.exists() else 'no such folder'))
    check_wheelhouse(wheelhouse)
    start = time.perf_counter()
    out = output_folder(args.out)
    # before anything can fail: a run that stops early leaves no earlier run's report behind
    remove_outputs(out, REPORT_FILES + sum(STAGE_OUTPUTS.values(), ()))
    log = out / 'gpu_check.log'
    log.write_text('')
    estimate = DRY_RUN_ESTIMATE_S if args.dry_run else ESTIMATE_S
    stages, over_budget = [], []

    def stage(name, status, began):
        stages.append({'stage': name, 'status': status,
                       'seconds': time.perf_counter() - began})
        print(f'[{time.perf_counter() - start:5.0f} s] {name}: {status}', flush=True)

    def left():
        return args.budget_s - (time.perf_counter() - start)

    began = time.perf_counter()
    info = environment(args.dry_run)
    stage('environment', f"torch {info['torch']}, CUDA {info['cuda']}, numpy {info['numpy']}, "
          f"numba {info['numba']}, GPUs: {', '.join(info['gpus']) or 'none'}", began)

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='fastssl-gpu-check-') as work:
        site = Path(work) / 'site'
        installed = install_missing(wheelhouse, site)
        stage('install', f"installed {', '.join(installed)}" if installed
              else 'nothing missing', began)
        env = python_env(site)

        cuda_rows, step = [], None
        began = time.perf_counter()
        if left() < estimate['cuda tests']:
            stage('cuda tests', f'SKIP (budget: {max(0, left()):.0f} s left)', began)
            over_budget.append('cuda tests')
        else:
            cuda_rows = cuda_tests(env, out, log, left(), args.dry_run)
            counts = {s: sum(r['status'] == s for r in cuda_rows)
                      for s in ('PASS', 'FAIL', 'MISS', 'SKIP')}
            stage('cuda tests', ', '.join(f'{n} {s}' for s, n in counts.items() if n), began)

        began = time.perf_counter()
        with_compile = left() >= estimate['train step'] + estimate['compile']
        if left() < estimate['train step']:
            stage('train step', f'SKIP (budget: {max(0, left()):.0f} s left)', began)
            over_budget.append('train step')
        else:
            step, code = train_step(env, out, log, left(), pairs, args.dry_run, with_compile)
            if code == 'timeout':
                finished = [k for k in step or {} if k not in ('machine', 'config', 'complete')]
                status = f"FAIL (stopped at the budget; finished: {', '.join(finished) or 'none'})"
            elif code != 0 or step is None:
                status = f'FAIL (exit {code}; see gpu_check.log)'
            else:
                status = 'done' + ('' if with_compile else ' (compile left out: budget)')
            stage('train step', status, began)

    report = {'environment': info, 'installed': installed, 'stages': stages,
              'targets': targets(cuda_rows, step, bool(info['gpus'])),
              'train_step': step, 'budget_s': args.budget_s, 'dry_run': args.dry_run,
              'seconds': time.perf_counter() - start}
    write_report(out, report)
    print((out / 'gpu_check.md').read_text())
    failed = any(t['verdict'] == 'FAIL' for t in report['targets']) or any(
        'FAIL' in s['status'] for s in stages)
    if over_budget:      # a check that left stages out is no pass
        print(f"incomplete: {' and '.join(over_budget)} skipped for the budget (raise "
              f"--budget-s)")
    return 1 if failed or over_budget else 0


def cli(argv=None):
    """``main``, with the environment's and the install's refusals one ``error:`` line too."""
    try:
        return main(argv)
    except CheckError as err:
        raise UserError(str(err)) from None


if __name__ == '__main__':
    run_cli(cli, stop_on_sigterm=True)
