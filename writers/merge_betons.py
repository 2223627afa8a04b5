"""Join ``.beton`` files of one schema (the shards of a ``--shard I/N`` write) into one.

    python writers/merge_betons.py OUT.beton IN.beton [IN.beton ...]

The inputs are video frames, video pairs or image files (``write_video_frames.py``,
``write_video_pairs.py``, ``write_images.py``) written with the same options. Every sample's
stored bytes (JPEG or raw images, proposal arrays) are copied as they are, never decoded or
re-encoded; only the pointers to them and the video ids change (an image's label is kept).
Shards of one write are put back in SRC's order (videos sorted by path relative to SRC, as
the video writers list them; images by the place in SRC's listing each shard records), so
that merging all N shards gives the file one unsharded write would have given, byte for
byte; other files are concatenated in the order given.

Checked before anything is written, each failure one ``error:`` line: every input exists,
is a complete ``.beton`` whose size and SHA-256 match its sidecar, and agrees with its
sidecar's video table or list of samples; the inputs share one schema, the same classes
(image files) and every writer option that changes what is stored (``--workers``,
``--strict``, ``--segment-frames`` and the location of SRC and of a ``--boxes`` file may
differ); shards are of one ``--shard I/N`` split of one SRC listing, none twice; files
without ``--shard`` do not hold the same bytes; no video, and no image (or box of one), is
in two inputs; OUT is not an input and does not exist. While copying, each input must
still be the file checked (not written again meanwhile).

The sidecar: the videos renumbered in the merged order (``id``, ``first_sample``) or the
samples in the merged order, skipped videos or images and warnings (a video's, each with its
``src`` where the inputs' SRC differ, so that the merged file can be merged again in SRC's
order), the options, the shards merged (``shard``), the inputs (``merged_from``), a fresh
``integrity``; every other entry combined from the inputs' (``writers/sidecar_combine.py``:
counts add up, a share or mean taken over one of them is recomputed from the totals,
settings the same in every input are kept, anything else that differs is kept per input).
:func:`merge_betons` is the library entry point.
"""
import contextlib
import itertools
import json
import os
import sys
from collections.abc import Iterable

import numpy as np

from fastssl_common.cli import ArgParser
from fastssl_common.errors import UserError, path_argument, run_cli
from fastssl_common.formats import LABEL, VIDEO_ID, sidecar_path
from fastssl_common.locks import held_output
from fastssl_common.numbers import check_flag
from writers.merge_checks import (
    check_classes,
    check_distinct,
    check_fields,
    check_formats,
    merged_options,
    merged_shard,
    missing_shards,
)
from writers.merge_inputs import file_identity, open_input, pointer_slots
from writers.sidecar_combine import combine
from writers.writer_common import allocating, check_output, make_writer, write_outputs

VIDEO_ID_FIELDS = (VIDEO_ID, LABEL)      # label = video_id in both video kinds
# Sidecar entries the merge rebuilds; every other one is combined by :func:`combine`.
REBUILT = ('format', 'num_samples', 'fields', 'videos', 'samples', 'skipped', 'warnings',
           'options', 'shard', 'integrity', 'merged_from')


def merge_betons(out, inputs, progress=None):
    """Merge the ``.beton`` files ``inputs`` (with their sidecars) into ``out`` and
    ``out + '.json'``. Returns a summary dict: ``out``, ``sidecar``, ``num_samples``,
    ``videos`` (the video table; None for image files), ``inputs`` (count), ``shard`` (the
    merged shards, None for files without ``--shard``), ``missing_shards`` (how many shards of
    the split that can hold a video or image are not merged) and ``first_missing_shards``
    (the first :data:`writers.merge_checks.MISSING_SHOWN` of them).
    Paths may be str or ``pathlib.Path``; ``inputs`` any iterable of them (``Path.glob``'s
    too). Raises UserError for bad input; on failure neither file is created."""
    out = path_argument(out, 'out')
    # one path given alone would be read as its letters, each an input
    if isinstance(inputs, (str, bytes, os.PathLike)) or not isinstance(inputs, Iterable):
        raise UserError(f'inputs must be a list of .beton paths, got {inputs!r}')
    inputs = [path_argument(path, 'inputs') for path in inputs]   # a generator is read once
    progress = check_flag(progress, 'progress', unset=True)
    if not inputs:
        raise UserError('give at least one input .beton')
    out = _check_paths(out, inputs)
    with held_output(out):
        _check_new(out)     # again: a merge into OUT may have ended since the check
        files = []
        for path in inputs:
            try:
                files.append(open_input(path, progress))
            except OSError as err:
                raise UserError(f'cannot read {path}: {err.strerror or err}') from None
        check_formats(files)
        unit = files[0].unit
        options = merged_options(files)      # a differing option names itself better than a field
        check_fields(files)
        if unit == 'image':
            check_classes(files)
        shard = merged_shard(files, unit)
        sharded = shard is not None
        if not sharded:         # shards are told apart by their indices (see check_distinct)
            check_distinct(files)
        first = files[0].sidecar
        metadata = {'format': first['format'], 'num_samples': 0}
        if 'fields' in first:
            metadata['fields'] = first['fields']
        metadata.update(combine([{k: v for k, v in f.sidecar.items() if k not in REBUILT}
                                 for f in files]))
        if unit == 'video':
            # SRC at different places (mounted elsewhere on some machines): each video, skipped
            # video and warning keeps its own, which a later merge of this file orders shards by
            own_src = not isinstance(options['src'], str)
            videos, runs = _merged_videos(files, sharded, own_src)
            metadata.update(videos=videos,
                            skipped=_merged_entries(files, 'skipped', sharded, own_src),
                            warnings=_merged_entries(files, 'warnings', sharded, own_src))
        else:
            videos = None
            samples, runs = _merged_samples(files, sharded)
            metadata.update(samples=samples, skipped=_merged_image_entries(files, sharded))
        num_samples = metadata['num_samples'] = sum(count for _, _, count, _ in runs)
        metadata['options'] = options
        if sharded:
            metadata['shard'] = shard
        metadata['merged_from'] = [
            {'path': os.path.abspath(f.path),
             'sha256': f.sidecar.get('integrity', {}).get('sha256'),
             'num_samples': f.layout.num_samples,
             **({'videos': len(f.sidecar['videos'])} if unit == 'video' else {}),
             'shard': f.sidecar.get('shard')} for f in files]
        sidecar = write_outputs(out, lambda tmp: _write_merged(tmp, files, runs),
                                metadata, progress)
        missing, first_missing = (0, []) if shard is None else missing_shards(shard, unit)
        return dict(out=out, sidecar=sidecar, num_samples=num_samples, videos=videos,
                    inputs=len(files), shard=shard, missing_shards=missing,
                    first_missing_shards=first_missing)


# ---------------------------------------------------------------------------- paths

def _check_paths(out, inputs):
    """The path to write (:func:`check_output`), once ``out`` and ``inputs`` are checked."""
    real_out = os.path.realpath(out)
    seen = set()
    for path in inputs:
        real = os.path.realpath(path)
        if real == real_out:
            raise UserError(f'output {out} is also an input')
        if real in seen:
            raise UserError(f'input {path} is given twice')
        seen.add(real)
        if path.endswith('.json') and os.path.isfile(path[:-len('.json')]):
            raise UserError(f'input {path} is the sidecar of {path[:-len(".json")]}: give '
                            f'the .beton files only (a pattern such as DIR/*.beton): each is read '
                            f'with its sidecar')
        if not os.path.exists(path):
            # the shell passes a pattern that matches nothing on as it is
            unmatched = ' (a pattern that matched no file?)' if any(
                c in path for c in '*?[') else ''
            raise UserError(f'input {path} does not exist{unmatched}')
        if not os.path.isfile(path):
            raise UserError(f'input {path} is not a file')
    out = check_output(out)
    _check_new(out)
    return out


def _check_new(out):
    for existing in (out, out + '.json'):
        if os.path.lexists(existing):
            raise UserError(f'output {existing} already exists (the first argument is the '
                            f'file the merge writes: OUT.beton IN.beton ...)')


# ---------------------------------------------------------------------------- videos

def _entry_src(entry, options):
    """The SRC a video, skipped video or warning was found in: its own where its file is a
    merge of inputs whose SRC differed, else its file's."""
    return entry.get('src', options['src'])


def _source_key(path, src):
    """Where ``path`` lies in its SRC's sorted listing (writers.video_source.find_videos)."""
    return tuple(os.path.normpath(os.path.relpath(path, src)).split(os.sep))


def _merged_videos(files, sharded, own_src):
    """The merged video table (ids and first samples renumbered; each video's SRC added when
    ``own_src``) and the runs of samples to copy, ``(input number, first sample, count, new
    video id)``, in the merged order."""
    order = [(number, video, _entry_src(video, f.options))
             for number, f in enumerate(files) for video in f.sidecar['videos']]
    # shards: a video in two of them was listed at one place by two SRC listings; other
    # files: one video written twice (from SRC and from a folder inside it, or through a
    # link to SRC, say), known by the path its sidecars record with the links resolved
    keys = [_source_key(video['source'], src) if sharded else os.path.realpath(video['source'])
            for _, video, src in order]
    first_input = {}
    for key, (number, video, _) in zip(keys, order):
        if first_input.setdefault(key, number) != number:
            raise UserError(f"video {video['source']} is in both "
                            f"{files[first_input[key]].path} and {files[number].path}: "
                            + ('shard one SRC' if sharded else 'give each video once'))
    if sharded:
        order = [item for _, item in sorted(zip(keys, order), key=lambda pair: pair[0])]
    videos, runs, first_sample = [], [], 0
    for new_id, (number, video, src) in enumerate(order):
        videos.append(dict(video, id=new_id, first_sample=first_sample,
                           **({'src': src} if own_src else {})))
        runs.append((number, video['first_sample'], video['num_samples'], new_id))
        first_sample += video['num_samples']
    return videos, runs


def _merged_entries(files, key, sharded, own_src):
    """The inputs' ``skipped`` or ``warnings`` lists as one, in SRC's order for shards (each
    entry's SRC added when ``own_src``)."""
    entries = [(entry, _entry_src(entry, f.options)) for f in files
               for entry in f.sidecar.get(key, [])]
    if sharded:
        entries.sort(key=lambda item: _source_key(item[0]['path'], item[1]))
    return [dict(entry, src=src) if own_src else entry for entry, src in entries]


# ---------------------------------------------------------------------------- images

def _merged_samples(files, sharded):
    """The merged image files' samples and the runs to copy, ``(input number, first sample,
    count, None)``, in the merged order: shards' by their place in SRC's listing, other files'
    in the order given. UserError for an image (or the same box of one) in two inputs."""
    order = [(number, sample, k) for number, f in enumerate(files)
             for k, sample in enumerate(f.sidecar['samples'])]
    if sharded:
        order.sort(key=lambda item: item[1]['index'])
        # no place twice in shards of one split of one SRC listing: an edited sidecar
        for (number, sample, _), (other, later, _) in zip(order, order[1:]):
            if sample['index'] == later['index']:
                raise UserError(f"place {sample['index']} in SRC's listing is given twice, in "
                                f"{sidecar_path(files[number].path)} and "
                                f"{sidecar_path(files[other].path)} (edited?): merge the shards "
                                f"as their writer wrote them")
    else:
        first_input = {}
        for number, sample, _ in order:
            key = os.path.realpath(sample['source']), json.dumps(sample.get('crop'))
            if first_input.setdefault(key, number) != number:
                what = '' if sample.get('crop') is None else f" (crop {sample['crop']})"
                raise UserError(f"image {sample['source']}{what} is in both "
                                f"{files[first_input[key]].path} and {files[number].path}: "
                                f"give each image once")
    runs = []
    for number, _, k in order:      # consecutive samples of one input are copied as one run
        if runs and runs[-1][0] == number and runs[-1][1] + runs[-1][2] == k:
            runs[-1][2] += 1
        else:
            runs.append([number, k, 1, None])
    return [sample for _, sample, _ in order], [tuple(run) for run in runs]


def _merged_image_entries(files, sharded):
    """The image files' ``skipped`` lists as one, in SRC's order for shards."""
    entries = [entry for f in files for entry in f.sidecar.get('skipped', [])]
    return sorted(entries, key=lambda entry: entry['index']) if sharded else entries


# ---------------------------------------------------------------------------- writing

def _write_merged(tmp, files, runs):
    """Write the merged samples to ``tmp`` with FFCV's DatasetWriter, copying every stored
    byte range (the allocator packs them into pages as the writers do)."""
    layout = files[0].layout
    fields = dict(zip(layout.field_names, layout.handlers))
    # every sample fitted in a page of its own file, so it fits in the largest of them
    page_size = max(f.layout.page_size for f in files)
    id_columns = [f'f{layout.field_names.index(n)}' for n in VIDEO_ID_FIELDS
                  if n in layout.field_names] if files[0].unit == 'video' else []
    num_samples = sum(count for _, _, count, _ in runs)
    writer = make_writer(tmp, fields, page_size)
    writer.from_jobs(num_samples, [(0, num_samples)], _copy_samples,
                     (files, runs, pointer_slots(layout), id_columns))


def _copy_samples(todo, metadata_sm, metadata_type, fields, allocator, done, allocations,
                  files, runs, pointer_slots, id_columns):
    """FFCV writer worker (``make_writer``'s ``from_jobs`` protocol): each run's samples in
    turn, their metadata rows copied, data copied into fresh allocations, ids renumbered."""
    metadata = np.frombuffer(metadata_sm.buf, dtype=metadata_type)
    with allocating(allocator):
        while todo.get() is not None:
            index = 0
            for number, start, count, video_id in runs:
                source = files[number]
                # one input open at a time: a merge of more shards than the limit on open
                # files (often 1024) still runs
                with _checked_handle(source) as handle:
                    for sample in range(start, start + count):
                        _copy_sample(metadata, index, source, sample, handle, allocator,
                                     pointer_slots)
                        for column in id_columns:
                            metadata[column][index] = video_id
                        index += 1
                with done.get_lock():
                    done.value += count
    allocations.put(allocator.allocations)


@contextlib.contextmanager
def _checked_handle(source):
    """A handle on the input ``source`` to copy from, UserError if the file at its path is no
    longer the one checked: its data would not match the pointers read (a shard written
    again while the merge ran)."""
    try:
        handle = os.open(source.path, os.O_RDONLY)
    except OSError as err:
        raise UserError(f'cannot read {source.path}: {err.strerror} (while merging: nothing '
                        f'was kept)') from None
    try:
        if file_identity(os.fstat(handle)) != source.identity:
            raise UserError(f'{source.path} changed while it was being merged (written '
                            f'again?): nothing was kept; merge once every shard is written')
        yield handle
    finally:
        os.close(handle)


def _copy_sample(metadata, index, source, sample, handle, allocator, pointer_slots):
    for attempt in range(2):      # as FFCV's writer: a sample that overflows its page is
        try:                      # undone and written again from a fresh page
            allocator.set_current_sample(index)
            metadata[index] = source.metadata[sample]
            for name, column in pointer_slots:
                pointers = metadata[name][column] if column else metadata[name]
                pointer = int(pointers[index])
                size = int(source.sizes[np.searchsorted(source.pointers, pointer)])
                data = os.pread(handle, size, pointer)
                if len(data) != size:     # it was checked whole: changed since
                    raise UserError(f'{source.path} ended inside sample {sample} (changed '
                                    f'while it was merged?)')
                pointers[index], storage = allocator.malloc(size)
                storage[:] = np.frombuffer(data, np.uint8)
            return
        except MemoryError:
            if attempt == 1:
                raise


# ---------------------------------------------------------------------------- CLI

def build_parser():
    parser = ArgParser(prog='merge_betons.py', description=(
        'Join .beton files of one schema (the shards of a write with --shard I/N) into one, '
        'copying their stored bytes, with one sidecar.'))
    parser.add_argument('out', metavar='OUT.beton', help='output file (must not exist)')
    parser.add_argument('inputs', metavar='IN.beton', nargs='+',
                        help='the files to join, each with its IN.beton.json sidecar')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    summary = merge_betons(args.out, args.inputs)
    videos = '' if summary['videos'] is None else f"videos: {len(summary['videos'])}, "
    print(f"inputs: {summary['inputs']}, {videos}samples: {summary['num_samples']}")
    shard = summary['shard']
    if shard is not None:
        print(f"shards: {_spans(shard['indices'])} of {shard['count']}")
        missing, first = summary['missing_shards'], summary['first_missing_shards']
        if missing:
            more = ', ...' if missing > len(first) else ''
            print(f"note: {missing} shard{'s' if missing > 1 else ''} of {shard['count']} not "
                  f"in this merge: {', '.join(map(str, first))}{more}", file=sys.stderr)
    print(f"output: {summary['out']} (metadata: {summary['sidecar']})")
    return 0


def _spans(indices):
    """Sorted shard numbers as text, each run of three or more as ``first-last`` (the line
    stays short for the hundreds of shards of an array job)."""
    spans = []
    for _, run in itertools.groupby(enumerate(indices), key=lambda item: item[1] - item[0]):
        numbers = [index for _, index in run]
        spans.append(f'{numbers[0]}-{numbers[-1]}' if len(numbers) >= 3 else
                     ', '.join(map(str, numbers)))
    return ', '.join(spans)


def cli():
    """The console entry point: ``main`` on the command line's arguments, a user error as one
    line and exit status 2 (:func:`fastssl_common.errors.run_cli`)."""
    run_cli(main, stop_on_sigterm=True)


if __name__ == '__main__':
    cli()
