"""``eval.py knn``: weighted kNN top-1/top-5 of a frozen backbone on labelled .betons."""
import json

from .eval_outputs import output_file
from .evaluation import knn_evaluation


def run(settings):
    e = settings.eval
    with output_file(e.output, 'eval.output', (e.checkpoint, e.train_path, e.val_path)):
        result = knn_evaluation(e, settings.knn.k, settings.knn.temperature)
    print(json.dumps(result, indent=2))
    return 0
