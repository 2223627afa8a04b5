"""Frozen-backbone evaluations on labelled .betons: weighted kNN and the linear probe.

Both read the shared ``eval`` section (backbone, data, device: ``fastssl/eval_config.py``),
load the backbone from any format ``model_io`` knows, and extract the train and val features
with the one ``knn.extract_features`` (channels-last, autocast on GPU) that the trainer's kNN
monitor uses.
"""
import torch

from fastssl_common.atomic import write_json
from loaders.eval_loader import make_eval_loader

from .device import resolve_device, resolve_precision
from .knn import extract_features, weighted_knn
from .linear_probe import topk_accuracy, train_linear_probe
from .model_io import load_backbone


def split_features(e, device, l2_normalize):
    """Backbone of ``e.checkpoint`` -> (summary dict, (train features, labels),
    (val features, labels)) on the CPU; a val set equal to the train set is extracted once."""
    dtype = resolve_precision(e.precision, device, 'eval.precision')
    backbone = load_backbone(e.checkpoint, e.arch, device).to(memory_format=torch.channels_last)
    val_path = e.val_path or e.train_path
    loaders = {path: make_eval_loader(path, e.batch_size, e.resolution, e.num_workers)
               for path in (e.train_path, val_path)}
    features = {path: extract_features(backbone, loader, device, dtype=dtype,
                                       l2_normalize=l2_normalize)
                for path, loader in loaders.items()}
    summary = {'checkpoint': e.checkpoint, 'arch': backbone.arch,
               'source_format': backbone.source_format, 'train_path': e.train_path,
               'val_path': val_path, 'resolution': e.resolution}
    return summary, features[e.train_path], features[val_path]


def _finish(e, result):
    if e.output:
        write_json(e.output, result)
    return result


def knn_evaluation(e, k, temperature):
    """Weighted kNN with the ``eval`` section ``e``; returns the result dict."""
    device = resolve_device(e.device, 'eval.device')
    summary, bank, queries = split_features(e, device, l2_normalize=True)
    top1, top5 = weighted_knn(*(t.to(device) for t in (*bank, *queries)), k=k,
                              temperature=temperature)
    return _finish(e, {**summary, 'k': k, 'temperature': temperature,
                       'top1': top1, 'top5': top5})


def linear_evaluation(e, p):
    """Linear probe with the ``eval`` section ``e`` and ``linear`` section ``p``."""
    device = resolve_device(e.device, 'eval.device')
    summary, (x_train, y_train), (x_val, y_val) = split_features(e, device, l2_normalize=False)
    num_classes = int(max(y_train.max(), y_val.max())) + 1
    probe = train_linear_probe(x_train, y_train, num_classes, epochs=p.epochs,
                               optimizer=p.optimizer, lr=p.lr, weight_decay=p.weight_decay,
                               batch_size=p.batch_size, seed=p.seed,
                               device=device)
    top1, top5 = topk_accuracy(probe, x_val, y_val)
    train_top1, = topk_accuracy(probe, x_train, y_train, ks=(1,))
    return _finish(e, {**summary, 'optimizer': p.optimizer, 'epochs': p.epochs, 'lr': p.lr,
                       'weight_decay': p.weight_decay, 'num_classes': num_classes,
                       'train_top1': train_top1, 'top1': top1, 'top5': top5})
