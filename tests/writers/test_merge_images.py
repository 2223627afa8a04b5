"""write_images.py --shard I/N and merge_betons.py on image files: all N shards merged give the
file one write gives, byte for byte (folders, list files with repeated and unreadable images,
interleaved boxes, 'proportion'), a partial merge merges again, labels are kept, and
shards or files that cannot be joined are refused with one line."""
import json
import os
import shutil

import pytest
import skimage.data
from PIL import Image

from fastssl_common.errors import UserError
from writers.merge_betons import merge_betons
from writers.write_images import write_images

OPTIONS = dict(write_mode='proportion', max_resolution=64, workers=2, progress=False)
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'camera', 'rocket', 'cat')


def save_photos(root, count, first=0):
    """``count`` real photo crops of varied sizes in two class folders; their paths."""
    paths = []
    for i in range(first, first + count):
        full = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()
        path = os.path.join(root, f'class{i % 2}', f'{i:02d}.png')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(full[7 * i:7 * i + 60 + 3 * i, 5 * i:5 * i + 90 - i]).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope='module')
def photos(module_tmp):
    """14 photos in two classes and one unreadable file among them."""
    root = str(module_tmp.mktemp('photos') / 'src')
    paths = save_photos(root, 14)
    bad = os.path.join(root, 'class0', 'bad.png')
    with open(bad, 'wb') as handle:
        handle.write(b'not an image')
    return root, paths, bad


def sidecar(path):
    with open(f'{path}.json') as handle:
        return json.load(handle)


def without_index(entries):
    return [{k: v for k, v in entry.items() if k != 'index'} for entry in entries]


def write_shards(src, folder, count, **options):
    outs = []
    for index in range(count):
        out = os.path.join(folder, f'shard{index}.beton')
        summary = write_images(src, out, shard=f'{index}/{count}', **OPTIONS, **options)
        assert summary['shard']['indices'] == [index] and summary['shard']['count'] == count
        outs.append(out)
    return outs


def assert_merge_is_the_whole_write(src, tmp_path, count, **options):
    whole = str(tmp_path / 'whole.beton')
    write_images(src, whole, **OPTIONS, **options)
    shards = write_shards(src, str(tmp_path), count, **options)
    merged = str(tmp_path / 'merged.beton')
    summary = merge_betons(merged, shards[::-1], progress=False)    # any order given
    assert summary['missing_shards'] == 0 and summary['videos'] is None
    with open(whole, 'rb') as a, open(merged, 'rb') as b:
        assert a.read() == b.read()
    expected, got = sidecar(whole), sidecar(merged)
    # each merged entry keeps its place in SRC's listing, for a merge of this file again
    assert [s['index'] for s in got['samples']] == sorted(s['index'] for s in got['samples'])
    for key in ('samples', 'skipped'):
        assert without_index(got[key]) == expected[key]
    for key in ('num_samples', 'classes', 'small_boxes_skipped', 'options'):
        assert got[key] == expected[key]
    assert got['shard']['indices'] == list(range(count))
    return expected


def test_all_shards_of_a_folder_merge_into_the_file_one_write_gives(photos, tmp_path):
    src, _, bad = photos
    expected = assert_merge_is_the_whole_write(src, tmp_path, 3)
    assert expected['num_samples'] == 14 and expected['classes'] == ['class0', 'class1']
    assert [entry['path'] for entry in expected['skipped']] == [bad]


def test_a_list_with_repeated_and_unreadable_images_merges_into_the_one_write(photos,
                                                                               tmp_path):
    """An image listed twice lies in two shards: it is skipped (unreadable) and counted once,
    as by one write, whichever shard holds its first listing."""
    _, paths, bad = photos
    listed = [paths[3], paths[1], bad, paths[3], paths[7], bad, paths[2], paths[9], paths[0],
              paths[12]]
    list_file = tmp_path / 'list.txt'
    list_file.write_text(''.join(f'{path} {len(path) % 3}\n' for path in listed))
    expected = assert_merge_is_the_whole_write(str(list_file), tmp_path, 4)
    assert expected['num_samples'] == 8 and len(expected['skipped']) == 1
    # a shard of unreadable images only: nothing to write, and the error says what to do
    with pytest.raises(UserError) as caught:
        write_images(str(list_file), str(tmp_path / 'bad.beton'), shard='2/8', **OPTIONS)
    assert str(caught.value) == (
        f'shard 2/8 of {list_file} holds no readable image (1 skipped; first: {bad}: not a '
        f'recognised image file): nothing to write; merge the other shards without it')


def test_interleaved_boxes_merge_into_the_one_write(photos, tmp_path):
    """Boxes of two images in turn: each run of one image's boxes is one image of the split,
    and the samples go back in the boxes file's order; small boxes add up."""
    src, paths, _ = photos
    names = [os.path.relpath(path, src) for path in paths[:4]]
    images = [{'id': k, 'file_name': name} for k, name in enumerate(names)]
    boxes = [(0, [2, 3, 30, 20]), (1, [1, 1, 25, 25]), (0, [10, 5, 20, 30]), (2, [0, 0, 8, 8]),
             (3, [4, 4, 30, 30]), (2, [3, 3, 20, 18]), (1, [5, 5, 4, 4]), (0, [0, 0, 40, 40])]
    boxes_file = tmp_path / 'boxes.json'
    boxes_file.write_text(json.dumps({
        'images': images, 'categories': [{'id': 1, 'name': 'thing'}],
        'annotations': [{'image_id': k, 'bbox': box, 'category_id': 1} for k, box in boxes]}))
    expected = assert_merge_is_the_whole_write(src, tmp_path, 3, boxes=str(boxes_file))
    assert expected['small_boxes_skipped'] == 2 and expected['num_samples'] == 6


def test_a_partial_merge_names_the_missing_shards_and_merges_again(photos, tmp_path):
    src, _, _ = photos
    whole = str(tmp_path / 'whole.beton')
    write_images(src, whole, **OPTIONS)
    shards = write_shards(src, str(tmp_path), 4)
    part = str(tmp_path / 'part.beton')
    summary = merge_betons(part, [shards[2], shards[0]], progress=False)
    assert summary['shard']['indices'] == [0, 2]
    assert (summary['missing_shards'], summary['first_missing_shards']) == (2, [1, 3])
    merged = str(tmp_path / 'merged.beton')
    merge_betons(merged, [shards[3], part, shards[1]], progress=False)
    with open(whole, 'rb') as a, open(merged, 'rb') as b:
        assert a.read() == b.read()


def test_files_without_shards_are_joined_in_order_with_their_labels(photos, tmp_path):
    """Labels are class indices: kept as they are (a video file's video ids are renumbered)."""
    from ffcv.reader import Reader

    first_src, _, _ = photos
    second_src = str(tmp_path / 'more')
    save_photos(second_src, 5, first=20)
    first, second = str(tmp_path / 'a.beton'), str(tmp_path / 'b.beton')
    write_images(first_src, first, **OPTIONS)
    write_images(second_src, second, **dict(OPTIONS, workers=1))
    merged = str(tmp_path / 'ab.beton')
    summary = merge_betons(merged, [first, second], progress=False)
    assert summary['num_samples'] == 19 and summary['shard'] is None

    def labels(path):
        reader = Reader(path)
        return reader.metadata[f"f{reader.field_names.index('label')}"].tolist()
    assert labels(merged) == labels(first) + labels(second)
    assert labels(second) == [0, 0, 0, 1, 1]      # class0: 20, 22, 24; class1: 21, 23
    got = sidecar(merged)
    assert got['samples'] == sidecar(first)['samples'] + sidecar(second)['samples']
    assert got['options']['workers'] == {'per_input': [2, 1]}
    assert got['options']['src'] == {'per_input': [first_src, second_src]}


def test_a_merge_of_every_shard_is_joined_like_one_write(photos, tmp_path):
    """All shards merged are the file one write gives: other files join it in order, as they
    join that one; a shard of it given again is still refused."""
    src, _, _ = photos
    shards = write_shards(src, str(tmp_path), 2)
    complete = str(tmp_path / 'complete.beton')
    merge_betons(complete, shards, progress=False)
    more = str(tmp_path / 'more')
    save_photos(more, 3, first=20)
    other = str(tmp_path / 'other.beton')
    write_images(more, other, **OPTIONS)
    joined = str(tmp_path / 'joined.beton')
    summary = merge_betons(joined, [complete, other], progress=False)
    assert summary['shard'] is None and summary['num_samples'] == 17
    assert sidecar(joined)['samples'] == sidecar(complete)['samples'] + sidecar(other)['samples']
    assert 'shard' not in sidecar(joined)
    refused(tmp_path, [complete, shards[1]], 'shard 1/2 is in both', complete, shards[1])
    # SRC written twice, split otherwise, from a copy at another path where one image has
    # since become unreadable: other paths and other bytes, the same listing
    copy = str(tmp_path / 'copy')
    shutil.copytree(src, copy)
    with open(os.path.join(copy, 'class1', '03.png'), 'wb') as handle:
        handle.write(b'damaged')
    again = str(tmp_path / 'again.beton')
    merge_betons(again, write_shards(copy, str(tmp_path / 'three'), 3), progress=False)
    refused(tmp_path, [complete, other, again], complete, again,
            'each hold every shard of one SRC listing: give it once')


def refused(tmp_path, inputs, *needles):
    out = tmp_path / 'out.beton'
    with pytest.raises(UserError) as caught:
        merge_betons(out, inputs, progress=False)
    for needle in needles:
        assert str(needle) in str(caught.value), str(caught.value)
    assert not os.path.lexists(out) and not os.path.lexists(f'{out}.json')


def test_files_that_cannot_be_joined_are_refused_with_one_line(photos, tmp_path):
    src, paths, _ = photos
    whole = str(tmp_path / 'whole.beton')
    write_images(src, whole, **OPTIONS)
    # another class list: label 0 would name two classes
    other = str(tmp_path / 'other')
    save_photos(other, 1, first=30)
    os.rename(os.path.join(other, 'class0'), os.path.join(other, 'dogs'))
    dogs = str(tmp_path / 'dogs.beton')
    write_images(other, dogs, **OPTIONS)
    refused(tmp_path, [whole, dogs], 'classes differ', whole, '2 classes (class0, class1)',
            dogs, '1 classes (dogs)')
    # one image in two files (through a link), or written with other options
    list_file = tmp_path / 'one.txt'
    list_file.write_text(f'{paths[5]}\n')
    one = str(tmp_path / 'one.beton')
    write_images(str(list_file), one, **OPTIONS)
    listed = str(tmp_path / 'listed.beton')
    write_images(str(tmp_path / 'one.txt'), listed, **dict(OPTIONS, max_resolution=32))
    refused(tmp_path, [one, listed], '--max-resolution differs')
    unlabelled = str(tmp_path / 'flat')
    os.makedirs(unlabelled)
    os.symlink(paths[5], os.path.join(unlabelled, 'same.png'))
    os.symlink(paths[6], os.path.join(unlabelled, 'another.png'))
    flat = str(tmp_path / 'flat.beton')
    write_images(unlabelled, flat, **OPTIONS)
    refused(tmp_path, [one, flat], 'same.png', 'is in both', one, flat,
            'give each image once')


def test_shards_of_other_listings_or_splits_are_refused(photos, tmp_path):
    src, _, _ = photos
    shards = write_shards(src, str(tmp_path), 2)
    three = str(tmp_path / 'three.beton')
    write_images(src, three, shard='2/3', **OPTIONS)
    refused(tmp_path, [shards[0], three], 'writer option --shard differs', 'one of 2 shards',
            'one of 3')
    refused(tmp_path, [shards[0], shards[1], str(tmp_path / 'whole.beton')], 'does not exist')
    whole = str(tmp_path / 'whole.beton')
    write_images(src, whole, **OPTIONS)
    refused(tmp_path, [shards[0], whole], 'is a --shard file', 'is not')
    # an image added to SRC between the shards' writes
    grown = str(tmp_path / 'grown')
    save_photos(grown, 4)
    first = str(tmp_path / 'g0.beton')
    write_images(grown, first, shard='0/2', **OPTIONS)
    save_photos(grown, 1, first=40)
    second = str(tmp_path / 'g1.beton')
    write_images(grown, second, shard='1/2', **OPTIONS)
    refused(tmp_path, [first, second], 'different SRC listings', '4 and 5 images found')
    # as many images, another one renamed
    os.rename(os.path.join(grown, 'class0', '40.png'), os.path.join(grown, 'class0', '41.png'))
    again = str(tmp_path / 'g1b.beton')
    write_images(grown, again, shard='1/2', **OPTIONS)
    renamed = str(tmp_path / 'g0b.beton')
    os.rename(os.path.join(grown, 'class0', '41.png'), os.path.join(grown, 'class0', '42.png'))
    write_images(grown, renamed, shard='0/2', **OPTIONS)
    refused(tmp_path, [renamed, again], 'different SRC listings (as many images, other paths)')


def test_the_cli_writes_a_shard_and_merges_it(photos, tmp_path, run_script,
                                              assert_one_line_error):
    src, _, _ = photos
    outs = [str(tmp_path / f's{k}.beton') for k in range(2)]
    for k, out in enumerate(outs):
        result = run_script('writers/write_images.py', src, out, '--shard', f'{k}/2',
                            '--workers', '1')
        assert result.returncode == 0, result.stderr
        assert f'shard: {k}/2 ({8 - k} of the 15 images found)' in result.stdout
    merged = str(tmp_path / 'merged.beton')
    result = run_script('writers/merge_betons.py', merged, *outs)
    assert result.returncode == 0, result.stderr
    assert 'inputs: 2, samples: 14\n' in result.stdout
    assert 'shards: 0, 1 of 2' in result.stdout
    assert_one_line_error(run_script('writers/write_images.py', src, tmp_path / 'x.beton',
                                     '--shard', '0/16'),
                          '--shard 0/16 leaves shards with no image', 'has 15 images',
                          "image j of SRC's listing is in shard j mod N", 'at most 15 shards')
    assert not os.path.exists(tmp_path / 'x.beton')


@pytest.mark.parametrize('key, damage', [
    ('classes', lambda s: s.pop('classes')),
    ('samples', lambda s: s['samples'][0].pop('source')),
    ('samples', lambda s: s['samples'][1].pop('index')),
    ('skipped', lambda s: s['skipped'][0].update(index='7')),
    ('shard.images_found', lambda s: s['shard'].pop('images_found')),
    ('shard.listing_sha256', lambda s: s['shard'].pop('listing_sha256')),
])
def test_a_damaged_image_sidecar_is_named(photos, tmp_path, key, damage):
    src, _, _ = photos
    shards = write_shards(src, str(tmp_path), 2)
    damaged = shards[1]         # the shard of bad.png, image 7 of the folder's 15
    with open(f'{damaged}.json') as handle:
        edited = json.load(handle)
    damage(edited)
    with open(f'{damaged}.json', 'w') as handle:
        json.dump(edited, handle)
    refused(tmp_path, shards, f'sidecar {damaged}.json: missing or invalid {key!r}')


def test_a_sample_list_that_does_not_fit_its_file_is_refused(photos, tmp_path):
    src, _, _ = photos
    shards = write_shards(src, str(tmp_path), 2)
    with open(f'{shards[1]}.json') as handle:
        edited = json.load(handle)
    edited['samples'].pop()
    with open(f'{shards[1]}.json', 'w') as handle:
        json.dump(edited, handle)
    refused(tmp_path, shards, f'{shards[1]}.json lists 5 samples, {shards[1]} holds 6')
