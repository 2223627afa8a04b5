"""``eval.py knn``: weighted kNN top-1/top-5 of a frozen backbone on labelled .betons."""
import json

from .evaluation import knn_evaluation


def run(settings):
    result = knn_evaluation(settings.eval, settings.knn.k, settings.knn.temperature)
    print(json.dumps(result, indent=2))
    return 0
