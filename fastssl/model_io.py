"""Backbones in and out: any supported checkpoint -> a torchvision ResNet feature extractor,
or a plain torchvision state dict on disk.

Every format is first reduced to the same thing, the backbone's weights under torchvision's
ResNet key names (``conv1.weight``, ``layer1.0.bn1.running_mean``, ...):

* our training checkpoints: ``state['model']['encoder_q.backbone.*']`` (split BatchNorm keeps
  plain BatchNorm's keys, and eval mode uses the running statistics, so it loads as is);
* the official MoCo v1/v2 release: ``state['state_dict']['module.encoder_q.*']``, whose
  ``fc.*`` is the projection head and is dropped;
* torchvision state dicts, bare or wrapped in ``state_dict`` and/or prefixed ``module.``
  (DataParallel); their ``fc`` is a classifier and is kept for export.

The architecture (one of ``config.ARCHITECTURES``) is read off the keys: block type and
blocks per stage. Files are read with ``torch.load(weights_only=True)``, so loading never
runs code from the file; only NumPy arrays (our checkpoints' RNG state) are allowed beyond
tensors. A zip archive must first pass its CRC-32 checks (torch.load checks none), and
weights that are not finite (a diverged run) are refused.
"""
import os
import re

import numpy as np
import torch
import torchvision
from torch import nn

from fastssl_common.atomic import atomic_path
from fastssl_common.errors import UserError

from .checkpoint import check_torch_file
from .config import ARCHITECTURES

# (format, key of the weights in the file (None = the file is the dict), key prefix,
#  whether its fc is a classifier worth keeping). First match wins.
FORMATS = (
    ('fastssl checkpoint', 'model', 'encoder_q.backbone.', False),
    ('official MoCo checkpoint', 'state_dict', 'module.encoder_q.', False),
    ('torchvision state dict', None, '', True),
    ('torchvision state dict', None, 'module.', True),
    ('torchvision state dict', 'state_dict', '', True),
    ('torchvision state dict', 'state_dict', 'module.', True),
)

# Our checkpoints hold NumPy RNG state: allow what pickled NumPy arrays and scalars need.
_NUMPY_GLOBALS = [np.zeros(1).__reduce__()[0], np.float64(0).__reduce__()[0], np.ndarray,
                  np.dtype] + [type(np.dtype(t)) for t in (np.bool_, np.uint8, np.uint32,
                                                            np.int32, np.int64, np.float32,
                                                            np.float64)]


# torch's load errors: ANSI bold codes, and for a pickled class its name after this
# names that would make a new export look like data or settings
DATA_SUFFIXES = ('.beton', '.json', '.yaml', '.yml', '.jpg', '.jpeg', '.png')
_ANSI = re.compile(r'\x1b\[[0-9;]*m')
_PICKLED_CLASS = re.compile(r'Unsupported global: GLOBAL (\S+)')


def read_file(path):
    check_torch_file(path)
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        raise _load_error(path, err) from None


def _load_error(path, err):
    """One line for torch.load's ``err``, whose message is paragraphs of advice."""
    text = _ANSI.sub('', str(err))
    pickled = _PICKLED_CLASS.search(text)
    if pickled:
        return UserError(f'{path} holds pickled Python objects ({pickled.group(1)}: a whole '
                         f'model saved with torch.save(model)?), not a state dict: save '
                         f'model.state_dict()')
    # the reason is after the advice, where torch gives one; its first sentence is enough
    reason = ' '.join(text.split('WeightsUnpickler error:')[-1].split()).split('. ')[0]
    return UserError(f'{path} is not a readable PyTorch checkpoint ({type(err).__name__}: '
                     f'{reason[:200]})')


def _found_keys(obj, limit=6):
    """A short description of a file's keys, for errors about unknown formats."""
    if not isinstance(obj, dict):
        return f'a {type(obj).__name__}, not a dict'
    keys = list(obj)
    for container in ('state_dict', 'model'):
        if isinstance(obj.get(container), dict):
            keys = [f'{container}/{k}' for k in list(obj[container])[:limit]] + keys
    more = f', ... ({len(keys)} in all)' if len(keys) > limit else ''
    return 'keys ' + ', '.join(map(str, keys[:limit])) + more


def backbone_weights(path):
    """-> (torchvision-named backbone weights incl. a classifier ``fc`` if the source had one,
    format name). UserError when the file matches no known format."""
    obj = read_file(path)
    for name, container, prefix, keep_fc in FORMATS:
        weights = obj.get(container) if container and isinstance(obj, dict) else obj
        if not isinstance(weights, dict) or f'{prefix}conv1.weight' not in weights:
            continue
        out = {k[len(prefix):]: v for k, v in weights.items()
               if isinstance(k, str) and k.startswith(prefix)}
        fc = {k: v for k, v in out.items() if k.startswith('fc.')}
        out = {k: v for k, v in out.items() if not k.startswith('fc.')}
        if keep_fc and set(fc) == {'fc.weight', 'fc.bias'}:
            out.update(fc)
        _check_finite(out, path, prefix, name)
        return out, name
    raise UserError(f'{path} matches no known checkpoint format (fastssl, official MoCo, '
                    f'torchvision ResNet); found {_found_keys(obj)}')


def _check_finite(weights, path, prefix, source):
    """A diverged run's NaN weights would evaluate as chance accuracy and export as NaN."""
    for key, value in weights.items():
        if torch.is_tensor(value) and value.is_floating_point() and not value.isfinite().all():
            what = 'NaN' if value.isnan().any() else 'inf'
            earlier = (': evaluate an earlier checkpoint_eNNNN.pt of its run'
                       if source == 'fastssl checkpoint' else '')
            raise UserError(f'checkpoint {path} has non-finite weights ({prefix}{key} holds '
                            f'{what}; a diverged run?){earlier}')


def infer_arch(weights, path=''):
    """ResNet depth from the keys: Bottleneck blocks have conv3; count blocks per stage."""
    bottleneck = 'layer1.0.conv3.weight' in weights
    blocks = []
    for stage in range(1, 5):
        ids = {int(m.group(1)) for k in weights
               for m in [re.match(rf'layer{stage}\.(\d+)\.', k)] if m}
        blocks.append(len(ids))
    for arch, signature in ARCHITECTURES.items():
        if signature == (bottleneck, tuple(blocks)):
            return arch
    kind = 'bottleneck' if bottleneck else 'basic'
    raise UserError(f"{path}: a ResNet with {kind} blocks {blocks} per stage is none of "
                    f"{', '.join(ARCHITECTURES)} (pass the architecture explicitly if it is one)")


def _resolve_arch(weights, arch, path):
    if arch == 'auto':
        return infer_arch(weights, path)
    if arch not in ARCHITECTURES:
        raise UserError(f"unknown architecture '{arch}' (auto, {', '.join(ARCHITECTURES)})")
    return arch


def _build(weights, arch, path, arch_key):
    """A torchvision ResNet with fc = Identity holding ``weights`` (fc entries ignored);
    ``arch_key`` is the setting a mismatch names."""
    model = getattr(torchvision.models, arch)(weights=None)  # nothing is downloaded
    model.fc = nn.Identity()
    try:
        model.load_state_dict({k: v for k, v in weights.items() if not k.startswith('fc.')})
    except RuntimeError as err:
        try:
            held = infer_arch(weights, path)
        except UserError:
            held = None
        if held not in (None, arch):    # PyTorch's key list would hide it in 300 characters
            raise UserError(f'{path} holds a {held} backbone, not a {arch}: set {arch_key} '
                            f'to {held} or auto') from None
        detail = ' '.join(str(err).split())[:300]
        raise UserError(f'{path}: weights do not fit {arch} ({detail})') from None
    return model


def load_backbone(path, arch='auto', device='cpu', arch_key='eval.arch'):
    """The backbone of any supported checkpoint as an ``nn.Module`` in eval mode: ImageNet-
    normalised images (B, 3, H, W) -> global-pooled features (B, D); fc / head removed.
    ``arch_key`` names the setting that gave ``arch``, for the refusal of a mismatch.

    The module also carries ``arch``, ``feature_dim`` and ``source_format`` attributes."""
    weights, source = backbone_weights(path)
    arch = _resolve_arch(weights, arch, path)
    model = _build(weights, arch, path, arch_key)
    model.arch, model.source_format = arch, source
    model.feature_dim = model.layer4[-1].conv1.in_channels
    return model.to(device).eval()


def export_backbone(path, out, arch='auto'):
    """Write the backbone of ``path`` to ``out`` (atomically) as a plain torchvision ResNet
    state dict. A classifier ``fc`` is kept when the source had one (torchvision models);
    self-supervised heads are not classifiers and are left out, so such files load with
    ``resnet.load_state_dict(sd, strict=False)`` (missing: exactly fc.weight, fc.bias).
    Returns a summary dict. ``out`` may replace an earlier export (a plain state dict), never
    the checkpoint it reads, another checkpoint (a training run's, say) nor a file that is not
    a PyTorch file (a dataset, say)."""
    if out.endswith(os.sep):  # refused now, not by the write after all the work
        raise UserError(f'export.out {out} ends in {os.sep}: give the path of a file (a .pth)')
    if not os.path.exists(out) and out.lower().endswith(DATA_SUFFIXES):
        # a new file that would be taken for a dataset or settings
        raise UserError(f'export.out {out} is named as a {os.path.splitext(out)[1]} file: give '
                        f'the path of a .pth')
    if os.path.exists(out):
        if os.path.isdir(out):
            raise UserError(f'export.out {out} is a folder, not a file')
        if os.path.exists(path) and os.path.samefile(out, path):
            raise UserError(f'export.out {out} is the checkpoint it exports: give another path')
        try:  # is it a PyTorch file at all; read_file below checks the rest
            check_torch_file(out, checksums=False)
        except UserError:
            raise UserError(f'export.out {out} exists and is not a PyTorch file: give another '
                            f'path') from None
        try:
            held = read_file(out)
        except UserError as err:
            raise UserError(f'export.out: {err}; remove it or give another path') from None
        if not (isinstance(held, dict) and all(map(torch.is_tensor, held.values()))):
            raise UserError(f'export.out {out} is a checkpoint, not an earlier export (a '
                            f'plain state dict): give another path')
    weights, source = backbone_weights(path)
    arch = _resolve_arch(weights, arch, path)
    state = _build(weights, arch, path, 'export.arch').state_dict()  # checked, torchvision's order
    if 'fc.weight' in weights:
        state.update({'fc.weight': weights['fc.weight'], 'fc.bias': weights['fc.bias']})
    state = {k: v.detach().clone().contiguous() for k, v in state.items()}
    with atomic_path(out) as tmp, open(tmp, 'wb') as handle:
        # into a file of ours: given a path, torch.save's own writer hides the OS's error (a
        # quota, a refused file) behind a RuntimeError, where atomic_path needs the OSError
        torch.save(state, handle)
    return {'checkpoint': path, 'out': out, 'arch': arch, 'source_format': source,
            'tensors': len(state), 'has_fc': 'fc.weight' in state}
