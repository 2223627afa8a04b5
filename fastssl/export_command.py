"""``eval.py export``: any supported checkpoint -> a plain torchvision ResNet state dict."""
import json

from fastargs import Param, Section

from .config import OneOf, Str
from .model_io import ARCHS, export_backbone


def declare(cfg):
    Section('export', 'Write the backbone as torchvision ResNet weights',
            config_descriptor=cfg).params(
        checkpoint=Param(Str(), 'fastssl / official MoCo checkpoint or torchvision state dict',
                         required=True),
        out=Param(Str(), 'output .pth (torchvision key names)', required=True),
        arch=Param(OneOf('auto', *ARCHS), 'backbone architecture (auto = read off the keys)',
                   default='auto'),
    )


def run(settings):
    x = settings.export
    print(json.dumps(export_backbone(x.checkpoint, x.out, x.arch), indent=2))
    return 0
