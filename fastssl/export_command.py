"""``eval.py export``: any supported checkpoint -> a plain torchvision ResNet state dict."""
import json

from .model_io import export_backbone


def run(settings):
    x = settings.export
    print(json.dumps(export_backbone(x.checkpoint, x.out, x.arch), indent=2))
    return 0
