"""Region proposals from a user's torchvision detection model (``--detector PATH``).

PATH is a state dict of one of torchvision's detection architectures (:data:`ARCHITECTURES`):
a file torchvision publishes (e.g. ``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth``), or a
checkpoint of torchvision's reference training scripts (``{"model": state_dict, ...}``).
Nothing is downloaded. It is read with ``torch.load(weights_only=True)``: tensors only, no
code from the file runs; a zip archive (torch.save's format) must first pass its CRC-32
checks, and non-finite weights are refused. The architecture is ``--detector-arch`` or, by
default, the known name the file name starts with (torchvision's own naming); the number of
classes is read off the classifier's shape. The model runs on the CPU in eval mode, on the
frame at tracking resolution (the model's own transform resizes it as it was trained); every
detection scoring at least ``min_score`` is a candidate box, whatever its class.
"""
import argparse
import os
import warnings

import numpy as np

from fastssl_common.atomic import stop_signals_held
from fastssl_common.errors import UserError, require_file
from fastssl_common.torch_files import ZIP_MAGIC, check_archive

# torchvision's detection builders that return boxes (keypoint R-CNN is left out: its class
# count is fixed by its keypoint head)
ARCHITECTURES = ('fasterrcnn_mobilenet_v3_large_320_fpn', 'fasterrcnn_mobilenet_v3_large_fpn',
                 'fasterrcnn_resnet50_fpn_v2', 'fasterrcnn_resnet50_fpn', 'fcos_resnet50_fpn',
                 'maskrcnn_resnet50_fpn_v2', 'maskrcnn_resnet50_fpn', 'retinanet_resnet50_fpn_v2',
                 'retinanet_resnet50_fpn', 'ssd300_vgg16', 'ssdlite320_mobilenet_v3_large')
DEFAULT_CLASSES = 91        # what the builders make without num_classes (COCO)


class Detector:
    """``detector(rgb) -> (boxes N x 4, scores N)`` in the frame's pixels, any class."""

    def __init__(self, model, min_score, architecture):
        self.model, self.min_score, self.architecture = model, float(min_score), architecture

    def __call__(self, rgb):
        import torch

        image = torch.tensor(rgb, dtype=torch.float32).permute(2, 0, 1) / 255
        # denormal activations (untrained or badly scaled weights) made CPU convolutions 40x
        # slower here (3.2 s vs 0.08 s a frame, same boxes); flushed during this call only
        # (PyTorch's default, off, is restored: nothing in this project turns it on)
        torch.set_flush_denormal(True)
        try:
            with torch.inference_mode():
                found = self.model([image])[0]
        finally:
            torch.set_flush_denormal(False)
        boxes = found['boxes'].double().numpy().reshape(-1, 4)
        scores = found['scores'].double().numpy()
        keep = scores >= self.min_score
        return boxes[keep], scores[keep]


def architecture_of(path, architecture=None):
    """The architecture to build: ``architecture`` if given, else the one the file name starts
    with (longest match). UserError when neither names a known architecture."""
    if architecture is not None:
        if architecture not in ARCHITECTURES:
            raise UserError(f"--detector-arch {architecture} is not one of: "
                            f"{', '.join(ARCHITECTURES)}")
        return architecture
    name = os.path.basename(path)
    matches = [arch for arch in ARCHITECTURES if name.startswith(arch)]
    if not matches:
        raise UserError(f"detector {path}: cannot tell its architecture from the file name; "
                        f"pass --detector-arch (one of: {', '.join(ARCHITECTURES)})")
    return max(matches, key=len)


def check_detector(path, min_score=0.5, architecture=None):
    """Check the state dict at ``path`` against its architecture without building the model
    (shapes only, on PyTorch's meta device; the one kernel, the finiteness check, on one
    thread: a process that forks workers afterwards hands them no OpenMP state):
    ``(architecture, num_classes, state dict)``. UserError (one line naming the file) when it
    does not exist, is damaged, is not a state dict, holds non-finite weights, does not fit
    the architecture or has no class besides the background."""
    require_file(path, 'detector')
    if not 0 <= min_score <= 1:
        raise UserError('--detector-min-score must be a number from 0 to 1')
    architecture = architecture_of(path, architecture)
    state = _read_state_dict(path)
    _check_finite(path, state)
    return architecture, _class_count(path, architecture, state), state


def _read_state_dict(path):
    """The state dict of tensors at ``path`` (a reference-script checkpoint's ``model``);
    UserError saying what the file is instead, and what to save."""
    with stop_signals_held():   # a Ctrl-C inside torch's import breaks every later one
        import torch

    try:
        with open(path, 'rb') as handle:
            head = handle.read(len(ZIP_MAGIC))
    except OSError as err:
        raise UserError(f'cannot read detector {path}: {err.strerror}') from None
    if head == ZIP_MAGIC:       # torch.load checks no CRC-32: damaged bytes load as weights
        check_archive(path, 'detector')
    try:
        # reference-script checkpoints also hold their argparse.Namespace under "args"
        with torch.serialization.safe_globals([argparse.Namespace]), \
                warnings.catch_warnings():
            # a TorchScript archive gets a warning as well as the error below
            warnings.simplefilter('ignore', UserWarning)
            state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # pickle, zip or unpickling-policy errors: all mean "not ours"
        text = str(err)
        if 'TorchScript' in text:
            raise UserError(f'detector {path} is a TorchScript archive, not a state dict: '
                            f'save model.state_dict()') from None
        if 'Unsupported global' in text:
            raise UserError(f'detector {path} holds pickled Python objects (a whole model '
                            f'saved with torch.save(model)?), not a state dict: save '
                            f'model.state_dict()') from None
        why = 'an empty file' if not head else 'torch.load with weights_only=True cannot read it'
        raise UserError(f'detector {path} is not a torch state dict file ({why})') from None
    if isinstance(state, dict) and isinstance(state.get('model'), dict):
        state = state['model']        # torchvision reference scripts' checkpoint
    if not isinstance(state, dict) or not state or \
            not all(isinstance(v, torch.Tensor) for v in state.values()):
        # a wrapper other than the reference scripts' (Lightning's "state_dict", ...)
        found = (f"keys {', '.join(map(str, list(state)[:5]))}" if isinstance(state, dict)
                 else f'a {type(state).__name__}')
        raise UserError(f'detector {path} is not a state dict of tensors (it holds {found}): '
                        f'save model.state_dict(), or {{"model": model.state_dict()}}')
    return state


def _check_finite(path, state):
    """UserError for non-finite weights: a diverged run's detect nothing, every pair silently
    without regions. On one thread: a kernel run on more would start OpenMP threads that
    forked workers hang on."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for key, value in state.items():
            if value.is_floating_point() and not value.isfinite().all():
                raise UserError(f'detector {path} has non-finite weights ({key} holds '
                                f"{'NaN' if value.isnan().any() else 'inf'}; a diverged run?)")
    finally:
        torch.set_num_threads(threads)


def _class_count(path, architecture, state):
    """The class count of ``state`` as ``architecture``'s weights; UserError when its keys or
    shapes do not fit the architecture (naming another one its keys fit)."""
    expected = _shapes(architecture, DEFAULT_CLASSES)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected), key=str)    # keys need not be strings
    if missing or unexpected:
        # one of each: a key prefix (DataParallel's "module.") shows in the pair
        examples = ', '.join(f'{what} {keys[0]}' for what, keys in
                             (('missing', missing), ('unexpected', unexpected)) if keys)
        # the keys do not depend on the class count: another architecture's keys name it
        fits = [arch for arch in ARCHITECTURES
                if arch != architecture and set(_shapes(arch, DEFAULT_CLASSES)) == set(state)]
        hint = f"; its keys fit --detector-arch {' or '.join(fits)}" if fits else ''
        raise UserError(f'detector {path} is not a {architecture} detection model '
                        f'({len(missing)} missing, {len(unexpected)} unexpected keys, e.g. '
                        f'{examples}){hint}')
    classes = DEFAULT_CLASSES
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            # the class count scales the classifier's first dimension (times anchors)
            classes = max(1, round(state[key].shape[0] * DEFAULT_CLASSES / shape[0]))
            break
    if classes != DEFAULT_CLASSES:
        expected = _shapes(architecture, classes)
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise UserError(f'detector {path} does not fit {architecture}: {key} has shape '
                            f'{tuple(state[key].shape)}, expected {shape}')
    if classes < 2:     # SSD cannot even run with it; the others would detect nothing
        raise UserError(f'detector {path} has one class, the background (torchvision counts '
                        f'it as class 0): a detector of one kind of object has num_classes=2')
    return classes


def _shapes(architecture, classes):
    """Parameter and buffer shapes of an architecture, from a model built on the meta device."""
    import torch
    import torchvision

    with torch.device('meta'):
        model = torchvision.models.get_model(architecture, weights=None, weights_backbone=None,
                                             num_classes=classes)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def load_detector(path, min_score=0.5, architecture=None):
    """Check (:func:`check_detector`) and build the detection model of the state dict at
    ``path``, in eval mode on the CPU."""
    import torchvision

    architecture, classes, state = check_detector(path, min_score, architecture)
    # the builders drop detections under a score floor of their own (0.05 for Faster R-CNN,
    # 0.2 for FCOS, ...) before ours: a lower min_score kept theirs. Theirs is set one float32
    # step under ours (they keep scores above it); __call__ applies ours
    floor = {'box_score_thresh' if 'rcnn' in architecture else 'score_thresh':
             float(np.nextafter(np.float32(min_score), np.float32(-1)))}
    model = torchvision.models.get_model(architecture, weights=None, weights_backbone=None,
                                         num_classes=classes, **floor)
    model.load_state_dict(state)
    return Detector(model.eval(), min_score, architecture)
