"""``eval.py linear``: linear probe on frozen features of labelled .betons (top-1/top-5)."""
import json

from fastargs import Param, Section

from .config import Float, Int, OneOf
from .evaluation import declare_eval_section, linear_evaluation


def declare(cfg):
    declare_eval_section(cfg)
    Section('linear', 'Linear classifier on standardised frozen features',
            config_descriptor=cfg).params(
        optimizer=Param(OneOf('sgd', 'lbfgs'),
                        'sgd: mini-batch + cosine lr; lbfgs: full batch', default='sgd'),
        epochs=Param(Int(), 'sgd: passes over the features; lbfgs: iterations', default=100),
        lr=Param(Float(), 'sgd learning rate (lbfgs uses a line search)', default=0.1),
        weight_decay=Param(Float(), 'L2 penalty on the weights', default=1e-4),
        batch_size=Param(Int(), 'sgd mini-batch (features, not images)', default=256),
        seed=Param(Int(), 'init and sample-order seed', default=0),
    )


def run(settings):
    print(json.dumps(linear_evaluation(settings.eval, settings.linear), indent=2))
    return 0
