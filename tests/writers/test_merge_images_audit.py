"""Audit of write_images.py --shard and merge_betons.py on image files: a shard that has
nothing to write says so about the shard, not about SRC as a whole; one list file read at two
places lists the same images; a shard sidecar's place in SRC's listing edited to a value its
writer never gives is refused, not merged out of order."""
import json
import os

import pytest

from fastssl_common.errors import UserError
from tests.writers.test_merge_images import OPTIONS, save_photos
from writers.write_images import write_images


def boxes_file(path, src, names, boxes):
    """A COCO boxes file of the images ``names`` (relative to ``src``), one category, with
    the boxes ``[(image number, [x, y, w, h]), ...]``."""
    path.write_text(json.dumps({
        'images': [{'id': k, 'file_name': os.path.relpath(name, src)}
                   for k, name in enumerate(names)],
        'categories': [{'id': 1, 'name': 'thing'}],
        'annotations': [{'image_id': k, 'bbox': box, 'category_id': 1} for k, box in boxes]}))
    return str(path)


def test_a_shard_of_small_boxes_only_names_the_shard_not_the_boxes_file(tmp_path):
    """Its boxes are all small: the boxes file as a whole has larger ones (the other shard
    writes them), so the error says what the shard holds and to merge the others."""
    src = str(tmp_path / 'src')
    paths = save_photos(src, 2)
    boxes = boxes_file(tmp_path / 'boxes.json', src, paths, [(0, [2, 3, 30, 20]),
                                                              (1, [1, 1, 5, 5])])
    write_images(src, str(tmp_path / 'shard0.beton'), boxes=boxes, shard='0/2', **OPTIONS)
    out = tmp_path / 'shard1.beton'
    with pytest.raises(UserError) as caught:
        write_images(src, str(out), boxes=boxes, shard='1/2', **OPTIONS)
    assert str(caught.value) == (
        f'shard 1/2 of {src} holds no box at least 16 pixels wide and high inside a readable '
        f'image (1 smaller; 0 skipped): nothing to write; merge the other shards without it')
    assert not os.path.lexists(out) and not os.path.lexists(f'{out}.json')


def test_one_list_of_absolute_paths_read_at_two_places_lists_the_same_images(tmp_path):
    """Each task reads its own copy of the list (in its scratch folder, say): the images it
    names are the same files, so the shards merge into the file one write gives."""
    from tests.writers.test_merge_images import sidecar, without_index
    from writers.merge_betons import merge_betons

    paths = save_photos(str(tmp_path / 'src'), 5)
    lines = ''.join(f'{path} {int("class1" in path)}\n' for path in paths + paths[:1])
    lists = [tmp_path / 'list.txt', tmp_path / 'task1' / 'scratch' / 'list.txt']
    for list_file in lists:
        list_file.parent.mkdir(parents=True, exist_ok=True)
        list_file.write_text(lines)
    whole = str(tmp_path / 'whole.beton')
    write_images(str(lists[0]), whole, **OPTIONS)
    shards = [str(tmp_path / f'shard{k}.beton') for k in range(2)]
    for k, (list_file, shard) in enumerate(zip(lists, shards)):
        write_images(str(list_file), shard, shard=(k, 2), **OPTIONS)
    merged = str(tmp_path / 'merged.beton')
    merge_betons(merged, shards, progress=False)
    with open(whole, 'rb') as a, open(merged, 'rb') as b:
        assert a.read() == b.read()
    assert without_index(sidecar(merged)['samples']) == sidecar(whole)['samples']


@pytest.fixture(scope='module')
def two_shards(module_tmp):
    """Shards 0/2 and 1/2 of four photos."""
    root = module_tmp.mktemp('two_shards')
    src = str(root / 'src')
    save_photos(src, 4)
    shards = [str(root / f'shard{k}.beton') for k in range(2)]
    for k, shard in enumerate(shards):
        write_images(src, shard, shard=f'{k}/2', **OPTIONS)
    return shards


@pytest.mark.parametrize('index, error', [
    (-2, "missing or invalid 'samples'"),
    (True, "missing or invalid 'samples'"),
    (0, "place 0 in SRC's listing is given twice, in {0}.json and {1}.json (edited?)"),
])
def test_an_edited_place_in_the_listing_is_refused(two_shards, tmp_path, index, error):
    """Before, each was merged, its sample put first or beside another's place: a file unlike
    the one write."""
    import shutil

    from tests.writers.test_merge_images import refused

    copies = []
    for shard in two_shards:
        copies.append(str(tmp_path / os.path.basename(shard)))
        for suffix in ('', '.json'):
            shutil.copyfile(shard + suffix, copies[-1] + suffix)
    with open(f'{copies[1]}.json') as handle:
        edited = json.load(handle)
    edited['samples'][0]['index'] = index       # it was 1
    with open(f'{copies[1]}.json', 'w') as handle:
        json.dump(edited, handle)
    refused(tmp_path, copies, error.format(*copies))
