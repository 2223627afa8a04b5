"""Evaluate checkpoints: ``python eval.py knn --eval.checkpoint=RUN/checkpoint_last.pt
--eval.train_path=train.beton [--eval.val_path=val.beton] [--eval.output=knn.json]``.

Settings are the fastargs ``eval`` section (``python eval.py knn --help``).
"""
import sys

from fastssl_common.errors import UserError, run_cli

COMMANDS = ('knn',)


def declare_eval_sections(cfg):
    from fastargs import Param, Section
    from fastssl.config import Float, Int, Str
    Section('eval', 'Checkpoint evaluation', config_descriptor=cfg).params(
        checkpoint=Param(Str(), 'fastssl checkpoint (.pt)', required=True),
        train_path=Param(Str(), 'labelled .beton: kNN memory bank', required=True),
        val_path=Param(Str(), 'labelled .beton: queries ("" = train_path)', default=''),
        resolution=Param(Int(), 'centre-crop side, px', default=224),
        batch_size=Param(Int(), 'images per batch', default=256),
        num_workers=Param(Int(), 'FFCV loader threads (0 = all cores)', default=0),
        knn_k=Param(Int(), 'neighbours', default=200),
        knn_temperature=Param(Float(), 'weighting temperature', default=0.07),
        device=Param(Str(), "'auto', 'cpu' or 'cuda[:N]'", default='auto'),
        output=Param(Str(), 'JSON file for the result ("" = print only)', default=''),
    )


def main(argv):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        raise UserError(f"usage: eval.py {{{','.join(COMMANDS)}}} --eval.key=value ...")
    from fastssl.config import Settings, as_dict, load_config
    from fastssl.evaluation import format_result, knn_evaluation
    from fastssl.trainer import resolve_device
    settings = Settings(as_dict(load_config(argv[1:], declare=declare_eval_sections)))
    result = knn_evaluation(settings.eval, resolve_device(settings.eval.device))
    print(format_result(result))
    return 0


if __name__ == '__main__':
    run_cli(main)
