"""Evaluate a checkpoint's frozen backbone: weighted kNN on labelled .betons.

Loads our training checkpoints (``model`` state dict with ``encoder_q.*`` keys) and infers
the architecture from the saved config. The invariance score, linear probe and other model
formats come with the evaluation issue.
"""
import torch

from fastargs import Param, Section

from fastssl_common.atomic import write_json
from fastssl_common.errors import UserError
from loaders.eval_loader import make_eval_loader

from .checkpoint import load_checkpoint
from .config import Int, OneOf, Str
from .encoder import Encoder
from .knn import extract_features, weighted_knn
from .split_batchnorm import convert_to_split_bn
from .trainer import resolve_device, resolve_precision


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


def declare_eval_section(cfg):
    """The ``eval`` section shared by the commands that evaluate a backbone on .betons."""
    Section('eval', 'Backbone and labelled data', config_descriptor=cfg).params(
        checkpoint=Param(Str(), 'fastssl checkpoint (.pt)', required=True),
        train_path=Param(Str(), 'labelled .beton: kNN memory bank / probe training set',
                         required=True),
        val_path=Param(Str(), 'labelled .beton: queries / probe test set ("" = train_path)',
                       default=''),
        resolution=Param(Int(), 'centre-crop side, px', default=224),
        batch_size=Param(Int(), 'images per batch', default=256),
        num_workers=Param(Int(), 'FFCV loader threads (0 = all cores)', default=0),
        device=Param(Str(), "'auto', 'cpu' or 'cuda[:N]'", default='auto'),
        precision=Param(OneOf('auto', 'fp32', 'bf16', 'fp16'),
                        'feature extraction autocast: auto = bf16 on GPUs that support it',
                        default='auto'),
        output=Param(Str(), 'JSON file for the result ("" = print only)', default=''),
    )


def knn_evaluation(e, k=200, temperature=0.07):
    """Weighted kNN with the ``eval`` section ``e``; returns the result dict."""
    device = resolve_device(e.device)
    dtype = resolve_precision(e.precision, device)
    encoder = load_query_encoder(e.checkpoint, device)
    loaders = [make_eval_loader(p, e.batch_size, e.resolution, e.num_workers)
               for p in (e.train_path, e.val_path or e.train_path)]
    with torch.no_grad():
        bank = extract_features(encoder.features, loaders[0], device, dtype=dtype)
        queries = extract_features(encoder.features, loaders[1], device, dtype=dtype)
    top1, top5 = weighted_knn(*bank, *queries, k=k, temperature=temperature)
    result = {'checkpoint': e.checkpoint, 'train_path': e.train_path,
              'val_path': e.val_path or e.train_path, 'k': k,
              'temperature': temperature, 'top1': top1, 'top5': top5}
    if e.output:
        write_json(e.output, result)
    return result
