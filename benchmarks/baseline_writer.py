"""The pairs writer of an earlier commit, timed in the same run as the current one.

A speed target set against "the writer as it was" needs that writer, not an option of
today's code that shares its speed-ups. :class:`BaselineWriter` unpacks the commit's tree
(``git archive``, from this checkout's history) into a folder and keeps one child process
there, with only that tree importable, which runs its ``write_video_pairs`` on request: warm
after the first call, like the current writer in this process, so the two can alternate call
by call.

    with BaselineWriter('c2420bc', workdir) as old:
        counts, seconds, cpu_seconds = old.write(src, out, gap=4, proposals=8, workers=2)

A benchmark offers it as ``--baseline-commit REV|none`` (:func:`add_baseline_option`);
:func:`resolve_baseline` says why the default commit cannot be used (no git, a shallow
clone), and the benchmark goes on without it; a commit given on the command line that cannot
be used stops it before any timing.
"""
import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile

from fastssl_common.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = 'baseline-result '      # the child's answer line; the writer may print other lines
BASELINE_COMMIT = 'c2420bc'      # the writer the tracked-proposal speed target (3x) was set against

# The child: the old tree first on sys.path (cwd), one JSON request a line, one answer each.
# An editable install of this checkout answers for what the old tree lacks: its modules must
# all come from the old tree. CPU time counts the child's threads and its ended pool workers,
# as the benchmark's own.
_CHILD = """
import importlib.util, json, os, resource, sys, time
tree = os.getcwd() + os.sep
spec = importlib.util.find_spec('writers.write_video_pairs')
if spec is None or not spec.origin.startswith(tree):
    sys.exit('that commit has no writers/write_video_pairs.py')
from writers.write_video_pairs import write_video_pairs
ours = ('writers', 'loaders', 'fastssl', 'fastssl_common')
foreign = sorted(name for name, module in list(sys.modules.items()) if name.split('.')[0] in ours
                 and not (getattr(module, '__file__', None) or tree).startswith(tree))
if foreign:
    sys.exit(f'modules from outside that commit: {foreign}')

def cpu():
    own, kids = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                     resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

for line in sys.stdin:
    request = json.loads(line)
    began, used = time.perf_counter(), cpu()
    try:
        summary = write_video_pairs(request['src'], request['out'], progress=False,
                                    **request['options'])
    except Exception as err:     # bad input for that writer: its one line, to the benchmark
        answer = str(err)
    else:
        answer = [summary['counts'], time.perf_counter() - began, cpu() - used]
    print(%r + json.dumps(answer), flush=True)
""" % RESULT


def _git(*args):
    return subprocess.run(['git', '-C', REPO, *args], capture_output=True, timeout=120)


def baseline_unavailable(commit):
    """Why ``commit`` cannot be unpacked from this checkout (a line), or None when it can."""
    try:
        found = _git('cat-file', '-e', f'{commit}^{{commit}}')
    except (OSError, subprocess.TimeoutExpired) as err:
        return f'git could not run ({err})'
    if found.returncode:
        shallow = _git('rev-parse', '--is-shallow-repository')
        why = ('not a git checkout' if shallow.returncode else
               'a shallow clone' if shallow.stdout.strip() == b'true' else 'no such commit')
        return f'commit {commit or repr(commit)} is not in the history of {REPO} ({why})'
    return None


def add_baseline_option(parser):
    parser.add_argument('--baseline-commit', metavar='REV', default=BASELINE_COMMIT,
                        help="time the writer of this commit too, from this checkout's "
                        f'history; none: leave it out (default {BASELINE_COMMIT}, the writer '
                        'the speed target was set against)')


def resolve_baseline(args):
    """Set ``args.baseline_missing``: why there is no baseline writer (also printed as a
    note), or None. UserError for a commit other than the default that cannot be used: the
    run was asked to time it."""
    args.baseline_missing = ('--baseline-commit none' if args.baseline_commit == 'none' else
                             baseline_unavailable(args.baseline_commit))
    if args.baseline_missing and args.baseline_commit not in ('none', BASELINE_COMMIT):
        raise UserError(f'--baseline-commit: {args.baseline_missing}; give a commit of this '
                        f'checkout, or none')
    if args.baseline_missing:
        print(f'note: no baseline writer: {args.baseline_missing}', flush=True)


def open_baseline(args, workdir):
    """The baseline writer ``args`` ask for, as a context: a :class:`BaselineWriter`, or
    None."""
    if args.baseline_missing:
        return contextlib.nullcontext()
    return BaselineWriter(args.baseline_commit, workdir)


class BaselineWriter:
    """``write_video_pairs`` of ``commit``, unpacked under ``workdir``, in a child process."""

    def __init__(self, commit, workdir):
        self.commit = commit
        self.tree = os.path.join(workdir, f'baseline-{commit}')
        self._child = None

    def __enter__(self):
        archive = _git('archive', '--format=tar', self.commit)
        if archive.returncode:
            raise UserError(f'git archive {self.commit}: {archive.stderr.decode().strip()}')
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(self.tree, filter='data')
        env = dict(os.environ, PYTHONPATH='')     # the old tree only, not this one
        self._child = subprocess.Popen([sys.executable, '-c', _CHILD], cwd=self.tree, env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True)
        return self

    def write(self, src, out, **options):
        """One call of the old writer (which replaces ``out``): ``(its summary's counts,
        seconds, CPU seconds)``."""
        request = dict(src=os.fspath(src), out=os.fspath(out), options=options)
        self._child.stdin.write(json.dumps(request) + '\n')
        self._child.stdin.flush()
        for line in self._child.stdout:
            if line.startswith(RESULT):
                answer = json.loads(line[len(RESULT):])
                if isinstance(answer, str):
                    raise UserError(f'the writer of commit {self.commit}: {answer}')
                counts, seconds, cpu = answer
                return counts, seconds, cpu
        raise UserError(f'the writer of commit {self.commit} stopped (exit code '
                        f'{self._child.wait()}); its error is above')

    def __exit__(self, *exc):
        if self._child is not None:
            self._child.stdin.close()          # its loop ends
            try:
                self._child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
