"""Audit of the video writers' --shard and their merge: a merge of every shard of a split is
joined like the file one write gives, so a shard of another write given with it is refused as
a shard mixed with a whole file, not as a shard of another split."""
import os

import pytest

from benchmarks.synthetic_video import write_sequence
from fastssl_common.errors import UserError
from writers.merge_betons import merge_betons
from writers.write_video_frames import write_video_frames

QUIET = dict(workers=1, progress=False)


@pytest.fixture(scope='module')
def written(module_tmp, chelsea_pan):
    """SRC (3 frame folders) as its 2 shards and their complete merge; OTHER (2 frame
    folders) as shard 0/2, as one write and as its one shard of 1."""
    root = module_tmp.mktemp('video_shards')
    for name, counts in (('src', (3, 4, 3)), ('other', (3, 4))):
        for i, count in enumerate(counts):
            write_sequence(root / name / f'{name}{i}', chelsea_pan(count, step=3 + i))
    files = {}
    for name, src, shard in (('s0', 'src', '0/2'), ('s1', 'src', '1/2'),
                             ('o_s0', 'other', '0/2'), ('other', 'other', None),
                             ('other_of_1', 'other', '0/1')):
        files[name] = str(root / f'{name}.beton')
        write_video_frames(str(root / src), files[name], shard=shard, **QUIET)
    files['complete'] = str(root / 'complete.beton')
    merge_betons(files['complete'], [files['s1'], files['s0']], progress=False)
    return files


def refused(tmp_path, inputs, message):
    out = str(tmp_path / 'out.beton')
    with pytest.raises(UserError) as caught:
        merge_betons(out, inputs, progress=False)
    assert str(caught.value) == message
    assert os.listdir(tmp_path) == []


def test_a_shard_given_with_a_merge_of_every_shard_of_another_split_names_the_mix(
        tmp_path, written, run_script, assert_one_line_error):
    f = written
    whole = ' (it holds every shard of its split): merge the shards of one write'
    # it was 'writer option --shard differs' or 'different SRC listings: shard one SRC', or
    # named the complete merge as the --shard file and the file after it as not one
    refused(tmp_path, [f['complete'], f['o_s0']],
            f"{f['o_s0']} is a --shard file, {f['complete']} is not{whole}")
    refused(tmp_path, [f['complete'], f['other'], f['o_s0']],
            f"{f['o_s0']} is a --shard file, {f['complete']} is not{whole}")
    refused(tmp_path, [f['s0'], f['other_of_1']],
            f"{f['s0']} is a --shard file, {f['other_of_1']} is not{whole}")
    # a shard of its own split is still in it twice
    refused(tmp_path, [f['complete'], f['s1']],
            f"shard 1/2 is in both {f['complete']} and {f['s1']}")
    result = run_script('writers/merge_betons.py', tmp_path / 'out.beton', f['o_s0'],
                        f['complete'])
    assert_one_line_error(result, f"{f['o_s0']} is a --shard file, {f['complete']} is not")
    assert os.listdir(tmp_path) == []
