"""writers/merge_betons.py as an array job's user meets it: shards of a SRC mounted at other
places merge again after a first merge, shards of alike videos merge, a shard written again
while the merge runs is refused, a merge of more shards than the open-file limit runs, and
path mistakes are named with their fix. Real videos (encoded with PyAV), real FFCV files."""
import json
import os
import resource
import shutil

import pytest

from fastssl.evaluation import class_names
from fastssl_common.errors import UserError
from tests.conftest import encode, pan
from writers.merge_betons import main, merge_betons
from writers.write_video_frames import write_video_frames

QUIET = dict(workers=1, progress=False)


def read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def frames(photo, step):
    import skimage.data

    return pan(getattr(skimage.data, photo)(), 3, step, 160, (48, 32))


@pytest.fixture(scope='module')
def video_src(module_tmp):
    """Four short x264 videos."""
    src = module_tmp.mktemp('audit') / 'src'
    src.mkdir()
    for i, photo in enumerate(('astronaut', 'chelsea', 'coffee', 'rocket')):
        encode(src / f'v{i}.mp4', frames(photo, 2 + i))
    return src


def write_shards(src, folder, count):
    paths = [str(folder / f'shard{k}.beton') for k in range(count)]
    for k, path in enumerate(paths):
        write_video_frames(str(src), path, shard=(k, count), **QUIET)
    return paths


def test_shards_of_a_src_mounted_elsewhere_merge_again(tmp_path, video_src):
    # one array task saw SRC through another path (a node-local copy, another mount)
    os.symlink(video_src, tmp_path / 'mount')
    shards = write_shards(video_src, tmp_path, 3)
    write_video_frames(str(tmp_path / 'mount'), shards[1], shard=(1, 3), **QUIET)
    one = str(tmp_path / 'one.beton')
    write_video_frames(str(video_src), one, **QUIET)
    first = str(tmp_path / 'first.beton')
    merge_betons(first, shards[:2], progress=False)
    videos = json.load(open(first + '.json'))['videos']
    assert [(os.path.basename(v['source']), v['src']) for v in videos] == [
        ('v0.mp4', str(video_src)), ('v1.mp4', str(tmp_path / 'mount')),
        ('v3.mp4', str(video_src))]
    # evaluation names each video relative to its own SRC, as for a file written in one go (a
    # val set of the same videos was refused as naming other classes)
    assert class_names(first) == (['v0.mp4', 'v1.mp4', 'v3.mp4'], None)
    everything = str(tmp_path / 'all.beton')
    merge_betons(everything, [shards[2], first], progress=False)     # in SRC's order again
    assert read(everything) == read(one)


def test_shards_holding_the_same_bytes_are_not_copies(tmp_path, video_src):
    src = tmp_path / 'src'
    shutil.copytree(video_src, src)
    shutil.copy(src / 'v0.mp4', src / 'v0_again.mp4')   # a clip found twice: 5 videos
    shards = write_shards(src, tmp_path, 5)
    assert read(shards[0]) == read(shards[1])            # v0.mp4 and v0_again.mp4
    one = str(tmp_path / 'one.beton')
    write_video_frames(str(src), one, **QUIET)
    out = str(tmp_path / 'all.beton')
    merge_betons(out, shards, progress=False)
    assert read(out) == read(one)


@pytest.mark.parametrize('change, needle', [
    # the shard task run again (other options: other bytes behind the same pointers)
    (lambda path, again: os.replace(again, path), 'changed while it was being merged'),
    (lambda path, again: os.remove(path), 'cannot read'),
], ids=['replaced', 'removed'])
def test_a_shard_written_again_during_the_merge_is_refused(tmp_path, video_src, monkeypatch,
                                                          change, needle):
    shards = write_shards(video_src, tmp_path, 2)
    again = str(tmp_path / 'again' / 'shard1.beton')
    write_video_frames(str(video_src), again, shard=(1, 2), jpeg_quality=40, **QUIET)
    out = tmp_path / 'merged.beton'
    real_open, pending = os.open, [True]

    def open_after_change(path, flags, *args, **kwargs):
        # another process acts between the merge's checks and its copy of shard 1's data
        if path == shards[1] and pending:
            change(path, again)
            pending.clear()
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, 'open', open_after_change)
    with pytest.raises(UserError) as caught:
        merge_betons(str(out), shards, progress=False)
    assert needle in str(caught.value) and shards[1] in str(caught.value)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(('merged', '.merged'))]


def test_more_shards_than_open_files_allowed(tmp_path, video_src, capsys):
    src = tmp_path / 'src'
    shutil.copytree(video_src, src)
    for i in range(4, 12):
        encode(src / f'v{i}.mp4', frames('astronaut', 1 + i))
    shards = write_shards(src, tmp_path, 12)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # fewer files may be opened than there are shards (as under a cluster's limit of 1024)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir('/proc/self/fd')) + 10, hard))
    try:
        assert main([str(tmp_path / 'all.beton'), *shards]) == 0
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    # the shards merged, as spans: the line stays short for hundreds of shards
    assert 'shards: 0-11 of 12\n' in capsys.readouterr().out


def test_path_mistakes_name_their_fix(tmp_path, video_src):
    shards = write_shards(video_src, tmp_path, 2)
    out = str(tmp_path / 'merged.beton')
    cases = [
        (out, [shards[0], shards[0] + '.json'],                  # DIR/* takes the sidecars
         f'input {shards[0]}.json is the sidecar of {shards[0]}: give the .beton files only'),
        (out, [str(tmp_path / 'shard_*.beton')],                 # a pattern left unexpanded
         'shard_*.beton does not exist (a pattern that matched no file?)'),
        (shards[0], shards[1:],                                  # OUT left out
         f'output {shards[0]} already exists (the first argument is the file the merge '
         f'writes'),
    ]
    before = sorted(os.listdir(tmp_path))
    for target, inputs, needle in cases:
        with pytest.raises(UserError) as caught:
            merge_betons(target, inputs, progress=False)
        assert needle in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == before


def test_a_shard_beside_another_shards_sidecar_is_named_as_such(tmp_path, video_src):
    """One shard's sidecar copied over another's was named as damage: 'shard1.beton is N
    bytes, its sidecar records M'."""
    shards = write_shards(video_src, tmp_path, 3)          # 2, 1 and 1 videos of 3 frames
    shutil.copy(shards[0] + '.json', shards[1] + '.json')
    with pytest.raises(UserError) as refused:
        merge_betons(str(tmp_path / 'merged.beton'), shards, progress=False)
    message = str(refused.value)
    assert message.startswith(f'{shards[1]} holds 3 samples, its sidecar {shards[1]}.json '
                              f'records 6 (the sidecar of another file'), message
    assert 'bytes' not in message
    assert not os.path.exists(tmp_path / 'merged.beton')
