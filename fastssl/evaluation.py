"""Frozen-backbone evaluations on labelled .betons: weighted kNN and the linear probe.

Both read the shared ``eval`` section (backbone, data, device: ``fastssl/eval_config.py``),
load the backbone from any format ``model_io`` knows, and extract the train and val features
with the one ``knn.extract_features`` (channels-last, autocast on GPU) that the trainer's kNN
monitor uses. Images that did not decode (evaluated black: ``loaders/centre_crop_decoder.py``)
are warned about, one line per file, and counted in the result (``decode_failures``); a file
none of whose images decoded is refused. One file given under two spellings (``F//x.beton``, a
link) is one set: read once, and kNN scores it leave-one-out.
"""
import contextlib
import os
import sys

import numpy as np
import torch

from fastssl_common.atomic import write_json
from fastssl_common.beton_file import check_layout, sidecar_mismatch
from fastssl_common.errors import UserError
from fastssl_common.formats import LABEL, VIDEO_FRAMES, load_sidecar
from loaders.batch_memory import check_batch_memory
from loaders.decode_failures import failure_warning
from loaders.eval_loader import make_eval_loader
from loaders.work_sharing import check_threads

from .device import resolve_device, resolve_precision
from .knn import dense_labels, extract_features, usable_neighbours, weighted_knn
from .linear_probe import topk_accuracy, train_linear_probe
from .model_io import load_backbone


def labelled_loaders(e):
    """{path: eval loader} of ``e.train_path`` and the val set (one loader when they are the
    same file), checked by :func:`check_labels`."""
    check_threads(e.num_workers, 'eval.num_workers')
    check_batch_memory(e.batch_size, e.resolution, 1, ('eval.batch_size', 'eval.resolution'))
    return checked_eval_loaders(e.train_path, e.val_path, ('eval.train_path', 'eval.val_path'),
                                e.batch_size, e.resolution, e.num_workers)


def checked_eval_loaders(train_path, val_path, keys, batch_size, resolution, num_workers,
                         os_cache=True):
    """{path: eval loader} of ``train_path`` and ``val_path`` (None: the train set), a file
    refused by its loader named with its key (``keys``: train's, val's), then
    :func:`check_labels`. ``eval.py`` and the training kNN monitor share it. A val set that is
    the train file under another spelling (``F//x.beton``, ``F/../F/x.beton``, a link) gets the
    train set's loader: callers tell "the val set is the train set" (leave-one-out) by
    identity."""
    loaders = {}
    for key, path in zip(keys, (train_path, val_path or train_path)):
        known = next((loader for seen, loader in loaders.items() if same_file(seen, path)),
                     None)
        if known is None:
            try:
                known = make_eval_loader(path, batch_size, resolution, num_workers, os_cache)
            except UserError as err:
                raise UserError(f'{key}: {err}') from None
        loaders[path] = known
    check_labels(loaders, train_path, val_path, *keys)
    return loaders


def same_file(path, other):
    """True when ``path`` and ``other`` name one file, however spelled (False when either is
    missing: its loader then says so)."""
    try:
        return path == other or os.path.samefile(path, other)
    except OSError:
        return False


def distinct(loaders):
    """``loaders`` ({path: eval loader}) with each loader once, under its first path."""
    first = {}
    for path, loader in loaders.items():
        if all(loader is not seen for seen in first.values()):
            first[path] = loader
    return first


def check_labels(loaders, train_path, val_path, train_key, val_key):
    """UserError, before any image is decoded, for labels that make an accuracy measure
    nothing: unlabelled samples in either set (``loaders``: {path: eval loader}), a train set
    of one class, or a val set numbering its classes unlike the train set
    (:func:`check_same_classes`); a note for val labels the train set lacks (misses). kNN
    (evaluation and the training monitor) and the linear probe share it."""
    for path, loader in distinct(loaders).items():
        labels = stored_labels(loader)
        if labels.min() < 0:
            key = train_key if loader is loaders[train_path] else val_key
            # -1 is what write_images stores for an image without a class; a list file may
            # give any negative number
            how = ('images written from outside class folders, or without a label in their '
                   'list file' if labels.min() == -1 else 'a negative label in its list file')
            raise UserError(f'{key} {path} has unlabelled samples (label {labels.min()}: '
                            f'{how}); kNN and the linear probe need labels')
    classes = np.unique(stored_labels(loaders[train_path]))
    if len(classes) < 2:
        raise UserError(f'{train_key} {train_path} holds a single class ({classes[0]}): '
                        f'an accuracy needs at least 2')
    if val_path and loaders[val_path] is not loaders[train_path]:
        check_same_classes(train_path, val_path, train_key, val_key)
        # labels the sidecars cannot compare (list files) may name classes the train set
        # lacks: nothing votes for them or teaches the probe them, so each such image is a
        # miss (dense_labels), which the accuracy alone would not tell
        val = stored_labels(loaders[val_path])
        missing = ~np.isin(val, classes)
        if missing.any():
            absent = np.unique(val[missing])
            shown = ', '.join(map(str, absent[:5])) + (', ...' if len(absent) > 5 else '')
            print(f'note: {missing.sum()} of the {len(val)} images of {val_key} '
                  f'{val_path} have labels {train_key} {train_path} lacks ({shown}): they '
                  f'count as misses', file=sys.stderr, flush=True)


def class_names(path):
    """(What each label of a .beton names, from its sidecar; None) or (None, why the sidecar
    names nothing): the class folders of ``write_images.py`` (numbered in sorted order; a list
    file names none: []), the videos of ``write_video_frames.py`` (label = video id; each
    named by its path relative to SRC: a merge of shards whose SRC lay at other places records
    each video's own)."""
    try:
        sidecar, metadata = load_sidecar(path)
    except UserError as err:
        return None, str(err)
    if metadata is None:
        return None, f'{sidecar} is missing'
    # another file's sidecar (a copy, or one left beside it) names that file's classes
    mismatch = sidecar_mismatch(path, check_layout(path), metadata, sidecar)
    if mismatch:
        return None, f'{mismatch}: the sidecar of another file'
    try:
        if metadata.get('format') == VIDEO_FRAMES.sidecar:
            src = metadata['options'].get('src')
            videos = sorted(metadata['videos'], key=lambda video: video['id'])
            return [video_name(video['source'], video.get('src', src)) for video in videos], None
        names = metadata.get('classes')
    except (AttributeError, KeyError, TypeError):
        names = None
    if not isinstance(names, list):
        return None, f'{sidecar} records no class names'
    return names, None


def video_name(source, src):
    """A video's path relative to its SRC (a file given as SRC: its name)."""
    if not isinstance(src, str):
        return source
    return os.path.relpath(source, src if source != src else os.path.dirname(src))


def check_same_classes(train_path, val_path, train_key, val_key):
    """UserError when the val set's labels name other classes than the same labels of the
    train set: each set numbers its own class folders (or videos), so a val folder missing a
    class (or holding another) shifts every label after it, and the accuracy measures
    nothing. Where a sidecar names nothing (a .beton copied without it, a list file's against
    one whose labels name classes), one warning line says that the check could not be made,
    and the file is still evaluated."""
    (train, train_why), (val, val_why) = class_names(train_path), class_names(val_path)
    # a list file's labels are integers of its own that name no class ([]): against a set
    # whose labels do, nothing tells whether they number its classes alike (two list files
    # both hold the user's own integers: nothing to compare)
    listed = '{} was written from a list file: its labels name no class'
    if train == [] and val:
        train, train_why = None, listed.format(train_path)
    elif val == [] and train:
        val, val_why = None, listed.format(val_path)
    if train is None or val is None:
        why = ', '.join(filter(None, (train_why, val_why)))
        print(f"warning: the class numbering of {val_key} {val_path} could not be compared "
              f"with {train_key} {train_path}'s ({why}): labels that name other classes in "
              f"the two sets would score as wrong answers", file=sys.stderr, flush=True)
        return
    for label, name in enumerate(val):
        if label >= len(train) or train[label] != name:
            there = f"'{train[label]}'" if label < len(train) else 'no class'
            raise UserError(f"{val_key} {val_path} numbers its classes unlike {train_key} "
                            f"{train_path}: its label {label} is '{name}', the train set's is "
                            f"{there} (write both from folders with the same classes, or "
                            f"video frames files from the same videos)")


def stored_labels(loader):
    """The labels of a loader's .beton, read from FFCV's metadata table (no image decoded)."""
    reader = loader.reader
    return reader.metadata[f'f{list(reader.handlers).index(LABEL)}']


def split_features(e, device, backbone, loaders, l2_normalize):
    """``backbone`` (of ``e.checkpoint``) over ``loaders`` (:func:`labelled_loaders`) ->
    (summary dict, (train features, labels), (val features, labels)) on the CPU; a val set
    that is the train file is extracted once, and its features are the train set's object.
    UserError for a file none of whose images decoded, or memory that runs out."""
    dtype = resolve_precision(e.precision, device, 'eval.precision')
    backbone = backbone.to(memory_format=torch.channels_last)
    val_path = e.val_path or e.train_path
    features = {}
    for path, loader in distinct(loaders).items():
        with memory_refusal(f'extracting the features of {path} with eval.batch_size '
                            f'{e.batch_size} at eval.resolution {e.resolution} on {device}',
                            'use a smaller eval.batch_size or eval.resolution'):
            features[id(loader)] = extract_features(backbone, loader, device, dtype=dtype,
                                                    l2_normalize=l2_normalize)
        refuse_undecoded(path, loader)
    failed = warn_decode_failures(loaders)
    summary = {'checkpoint': e.checkpoint, 'arch': backbone.arch,
               'source_format': backbone.source_format, 'train_path': e.train_path,
               'val_path': val_path, 'resolution': e.resolution,
               **({'decode_failures': failed} if failed else {})}
    return summary, features[id(loaders[e.train_path])], features[id(loaders[val_path])]


def refuse_undecoded(path, loader):
    """UserError when not one image of ``path`` decoded in the pass just made: an accuracy
    over black images alone measures nothing (a few are counted and warned about instead)."""
    total = int(loader.reader.num_samples)
    if loader.decode_failures.count >= total:
        raise UserError(f'none of the {total} images of {path} decoded: the file was damaged '
                        f'after it was written (python -m loaders.verify {path} checks the '
                        f'whole file)')


@contextlib.contextmanager
def memory_refusal(doing, remedy):
    """A failed allocation in the block as one line: torch's CPU allocator raises a
    RuntimeError ("can't allocate"), CUDA's an OutOfMemoryError ("out of memory")."""
    try:
        yield
    except RuntimeError as err:
        text = str(err)
        if not (isinstance(err, torch.OutOfMemoryError) or "can't allocate" in text
                or 'out of memory' in text):
            raise
        raise UserError(f'out of memory {doing}: {remedy}') from None


def warn_decode_failures(loaders, before=None, where=''):
    """One warning line on standard error for each file of ``loaders`` ({path: eval loader})
    with images that did not decode since its count in ``before`` ({path: count}; None: since
    the loader was made); ``where`` follows "did not decode" in the line (the kNN monitor's
    pass). Returns {path: images that did not decode} of those files."""
    failed = {}
    for path, loader in distinct(loaders).items():
        failures = loader.decode_failures
        new = failures.count - (before or {}).get(path, 0)
        if new:
            failed[path] = new
            print('warning: ' + failure_warning(
                path, new, failures, f'{where} and were evaluated as black images'),
                file=sys.stderr, flush=True)
    return failed


def _finish(e, result):
    if e.output:
        write_json(e.output, result)
    return result


def knn_evaluation(e, k, temperature):
    """Weighted kNN with the ``eval`` section ``e``; returns the result dict."""
    device = resolve_device(e.device, 'eval.device')
    backbone = load_backbone(e.checkpoint, e.arch, device)
    loaders = labelled_loaders(e)
    # a bank smaller than k (the default 200 on a small labelled set) votes with all of it;
    # the result says so rather than report the k asked for
    summary, bank, queries = split_features(e, device, backbone, loaders, l2_normalize=True)
    # a val set that is the train file (however spelled: split_features gives the train set's
    # features then) is scored leave-one-out: no query votes for itself
    leave_one_out = queries is bank
    used = min(k, usable_neighbours(int(loaders[e.train_path].reader.num_samples),
                                    leave_one_out))
    top1, top5 = weighted_knn(*(t.to(device) for t in (*bank, *queries)), k=used,
                              temperature=temperature, leave_one_out=leave_one_out)
    asked = {} if used == k else {'k_requested': k}
    return _finish(e, {**summary, 'k': used, **asked, 'temperature': temperature,
                       'leave_one_out': leave_one_out, 'top1': top1, 'top5': top5})


def linear_evaluation(e, p):
    """Linear probe with the ``eval`` section ``e`` and ``linear`` section ``p``."""
    device = resolve_device(e.device, 'eval.device')
    backbone = load_backbone(e.checkpoint, e.arch, device)
    summary, (x_train, y_train), (x_val, y_val) = split_features(
        e, device, backbone, labelled_loaders(e), l2_normalize=False)
    num_classes, y_train, y_val = dense_labels(y_train, y_val)
    # the probe holds every train feature on the device, then one batch of logits (sgd) or all
    # of them at once (lbfgs)
    remedies = ['eval.device=cpu'] if device.type != 'cpu' else []
    remedies.append('a smaller linear.batch_size' if p.optimizer == 'sgd' else
                    'linear.optimizer=sgd (mini-batches)')
    with memory_refusal(f'training the linear probe on {x_train.shape[0]} x '
                        f'{x_train.shape[1]} features of {num_classes} classes on {device}',
                        'use ' + ' or '.join(remedies)):
        probe = train_linear_probe(x_train, y_train, num_classes, epochs=p.epochs,
                                   optimizer=p.optimizer, lr=p.lr, weight_decay=p.weight_decay,
                                   batch_size=p.batch_size, seed=p.seed, device=device)
    if not all(param.isfinite().all() for param in probe.linear.parameters()):
        # SGD's step scales the weight decay's pull as it scales the loss's: a weight decay
        # far too large diverges at any learning rate
        raise UserError(f'the linear probe diverged (its weights are not finite) with '
                        f'linear.lr={p.lr}, linear.weight_decay={p.weight_decay}: use a '
                        f'smaller linear.lr or linear.weight_decay')
    top1, top5 = topk_accuracy(probe, x_val, y_val)
    train_top1, = topk_accuracy(probe, x_train, y_train, ks=(1,))
    return _finish(e, {**summary, 'optimizer': p.optimizer, 'epochs': p.epochs, 'lr': p.lr,
                       'weight_decay': p.weight_decay, 'num_classes': num_classes,
                       'train_top1': train_top1, 'top1': top1, 'top5': top5})
