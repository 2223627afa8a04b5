"""Evaluate a checkpoint's frozen backbone: weighted kNN on labelled .betons.

Loads our training checkpoints (``model`` state dict with ``encoder_q.*`` keys) and infers
the architecture from the saved config. The invariance score, linear probe and other model
formats come with the evaluation issue.
"""
import json

import torch

from fastssl_common.atomic import write_json
from fastssl_common.errors import UserError
from loaders.eval_loader import make_eval_loader

from .checkpoint import load_checkpoint
from .encoder import Encoder
from .knn import extract_features, weighted_knn
from .split_batchnorm import convert_to_split_bn


def load_query_encoder(path, device):
    """The query encoder of a fastssl checkpoint, in eval mode."""
    state = load_checkpoint(path, map_location='cpu')
    if 'model' not in state or 'config' not in state:
        raise UserError(f"{path} is not a fastssl training checkpoint (no 'model'/'config')")
    model_cfg = state['config']['model']
    encoder = Encoder(model_cfg['arch'], model_cfg['proj_hidden'], model_cfg['proj_dim'])
    convert_to_split_bn(encoder, state['config']['moco']['bn_splits'])
    prefix = 'encoder_q.'
    weights = {k[len(prefix):]: v for k, v in state['model'].items() if k.startswith(prefix)}
    try:
        encoder.load_state_dict(weights)
    except RuntimeError as err:
        raise UserError(f"{path}: weights do not fit {model_cfg['arch']} "
                        f"({str(err).splitlines()[0]})") from None
    return encoder.to(device).eval()


def knn_evaluation(e, device):
    """Run weighted kNN with the ``eval`` section ``e``; returns the result dict."""
    encoder = load_query_encoder(e.checkpoint, device)
    loaders = [make_eval_loader(p, e.batch_size, e.resolution, e.num_workers)
               for p in (e.train_path, e.val_path or e.train_path)]
    with torch.no_grad():
        bank = extract_features(encoder.features, loaders[0], device)
        queries = extract_features(encoder.features, loaders[1], device)
    top1, top5 = weighted_knn(*bank, *queries, k=e.knn_k, temperature=e.knn_temperature)
    result = {'checkpoint': e.checkpoint, 'train_path': e.train_path,
              'val_path': e.val_path or e.train_path, 'k': e.knn_k,
              'temperature': e.knn_temperature, 'top1': top1, 'top5': top5}
    if e.output:
        write_json(e.output, result)
    return result


def format_result(result):
    return json.dumps(result, indent=2)
