"""Region proposals from a user's torchvision detection model (``--detector PATH``).

PATH is a state dict of one of torchvision's detection architectures (:data:`ARCHITECTURES`):
a file torchvision publishes (e.g. ``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth``), or a
checkpoint of torchvision's reference training scripts (``{"model": state_dict, ...}``).
Nothing is downloaded. It is read with ``torch.load(weights_only=True)``: tensors only, no
code from the file runs. The architecture is ``--detector-arch`` or, by default, the known
name the file name starts with (torchvision's own naming); the number of classes is read off
the classifier's shape. The model runs on the CPU in eval mode, on the frame at tracking
resolution (the model's own transform resizes it as it was trained); every detection scoring
at least ``min_score`` is a candidate box, whatever its class.
"""
import os

import numpy as np

from fastssl_common.errors import UserError

# torchvision's detection builders that return boxes (keypoint R-CNN is left out: its class
# count is fixed by its keypoint head)
ARCHITECTURES = ("fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
                 "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_resnet50_fpn", "fcos_resnet50_fpn",
                 "maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn", "retinanet_resnet50_fpn_v2",
                 "retinanet_resnet50_fpn", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large")
DEFAULT_CLASSES = 91        # what the builders make without num_classes (COCO)


class Detector:
    """``detector(rgb) -> (boxes N x 4, scores N)`` in the frame's pixels, any class."""

    def __init__(self, model, min_score, architecture):
        self.model, self.min_score, self.architecture = model, float(min_score), architecture

    def __call__(self, rgb):
        import torch

        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255
        with torch.inference_mode():
            found = self.model([image])[0]
        boxes = found["boxes"].double().numpy().reshape(-1, 4)
        scores = found["scores"].double().numpy()
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


def load_detector(path, min_score=0.5, architecture=None):
    """Build the detection model of the state dict at ``path``. UserError (one line naming
    the file) when it does not exist, is not a state dict, or does not fit the architecture."""
    if not os.path.isfile(path):
        raise UserError(f"detector {path} does not exist")
    if not 0 <= min_score <= 1:
        raise UserError("--detector-min-score must be a number from 0 to 1")
    architecture = architecture_of(path, architecture)
    import torch
    import torchvision

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # pickle, zip or unpickling-policy errors: all mean "not ours"
        raise UserError(f"detector {path} is not a torch state dict file "
                        f"(torch.load with weights_only=True cannot read it)") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]        # torchvision reference scripts' checkpoint
    if not isinstance(state, dict) or not state or \
            not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"detector {path} is not a state dict of tensors")
    with torch.device("meta"):        # shapes only: nothing allocated or initialised
        expected = torchvision.models.get_model(architecture, weights=None,
                                                weights_backbone=None).state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise UserError(f"detector {path} is not a {architecture} detection model "
                        f"({len(missing)} missing, {len(unexpected)} unexpected keys, e.g. "
                        f"{example})")
    classes = DEFAULT_CLASSES
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            # the class count scales the classifier's first dimension (times anchors)
            classes = round(state[key].shape[0] * DEFAULT_CLASSES / tensor.shape[0])
            break
    try:
        model = torchvision.models.get_model(architecture, weights=None, weights_backbone=None,
                                             num_classes=classes)
        model.load_state_dict(state)
    except (RuntimeError, ValueError) as err:
        raise UserError(f"detector {path} does not fit {architecture}: "
                        f"{' '.join(str(err).split())[:160]}") from None
    return Detector(model.eval(), min_score, architecture)
