"""``eval.py knn``: weighted kNN top-1/top-5 of a frozen backbone on labelled .betons."""
import json

from fastargs import Param, Section

from .config import Float, Int
from .evaluation import declare_eval_section, knn_evaluation


def declare(cfg):
    declare_eval_section(cfg)
    Section('knn', 'Weighted kNN (cosine similarity, votes exp(s / T))',
            config_descriptor=cfg).params(
        k=Param(Int(), 'neighbours', default=200),
        temperature=Param(Float(), 'weighting temperature T', default=0.07),
    )


def run(settings):
    result = knn_evaluation(settings.eval, settings.knn.k, settings.knn.temperature)
    print(json.dumps(result, indent=2))
    return 0
