"""``eval.py linear``: linear probe on frozen features of labelled .betons (top-1/top-5)."""
import json

from .eval_outputs import output_file
from .evaluation import linear_evaluation


def run(settings):
    e = settings.eval
    with output_file(e.output, 'eval.output', (e.checkpoint, e.train_path, e.val_path)):
        result = linear_evaluation(e, settings.linear)
    print(json.dumps(result, indent=2))
    return 0
