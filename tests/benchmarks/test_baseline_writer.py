"""The writer of an earlier commit, run in a child process for the proposals benchmark: it
writes the pairs that commit's writer writes, and bad input for it is one line naming the
commit. Skipped where the checkout lacks the commit (a shallow clone)."""
import subprocess

import pytest

from benchmarks.baseline_writer import (
    BASELINE_COMMIT,
    REPO,
    BaselineWriter,
    baseline_unavailable,
)
from fastssl_common.errors import UserError
from writers.write_video_pairs import write_video_pairs


@pytest.fixture(scope='module')
def clips(module_tmp, encode_clip, chelsea_pan):
    folder = module_tmp.mktemp('baseline')
    frames = chelsea_pan(40)
    return {count: encode_clip(folder / f'pan{count}.mp4', frames[:count]) for count in (3, 40)}


def test_the_old_writer_writes_its_pairs_and_names_its_commit_on_bad_input(clips, tmp_path):
    missing = baseline_unavailable(BASELINE_COMMIT)
    if missing:
        pytest.skip(missing)
    out = str(tmp_path / 'old.beton')
    with BaselineWriter(BASELINE_COMMIT, str(tmp_path)) as old:
        counts, seconds, cpu = old.write(clips[40], out, gap=4, workers=1, max_resolution=64)
        # pairs (i, i + 4) for i = 0, 4, ..., 32 of 40 frames, as the current writer writes
        assert counts['frames_read'] == 40
        new = write_video_pairs(clips[40], str(tmp_path / 'new.beton'), gap=4, workers=1,
                                max_resolution=64, progress=False)
        assert counts['pairs_written'] == 9 == new['num_samples']
        assert seconds > 0 and cpu > 0
        assert (tmp_path / 'old.beton').stat().st_size > 0
        with pytest.raises(UserError, match=rf'^the writer of commit {BASELINE_COMMIT}: .*only '
                                            r'3 frames, too short for a gap of 4$'):
            old.write(clips[3], out, gap=4, workers=1)
        # the child goes on after bad input
        assert old.write(clips[40], out, gap=4, workers=1,
                         max_resolution=64)[0]['pairs_written'] == 9


def test_a_commit_without_the_writer_says_so_not_times_this_checkouts(clips, tmp_path, capfd):
    # the editable install of this checkout answered for the module the old tree lacks
    root = subprocess.run(['git', '-C', REPO, 'rev-list', '--max-parents=0', 'HEAD'],
                          capture_output=True, text=True)
    if root.returncode or baseline_unavailable(root.stdout.split()[0]):
        pytest.skip('no history to take the first commit from')
    first = root.stdout.split()[0]          # loaders and image writers only: no video writer
    with BaselineWriter(first, str(tmp_path)) as old:
        with pytest.raises(UserError, match=rf'^the writer of commit {first} stopped \(exit '
                                            r'code 1\); its error is above$'):
            old.write(clips[40], str(tmp_path / 'old.beton'), gap=4)
    assert 'that commit has no writers/write_video_pairs.py' in capfd.readouterr().err


def test_a_commit_the_checkout_lacks_is_named():
    shallow = subprocess.run(['git', '-C', REPO, 'rev-parse', '--is-shallow-repository'],
                             capture_output=True, text=True)
    if shallow.returncode or shallow.stdout.strip() == 'true':
        pytest.skip('needs a full git checkout')
    assert baseline_unavailable('0123abc') == \
        f'commit 0123abc is not in the history of {REPO} (no such commit)'
