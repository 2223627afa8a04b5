"""``eval.py linear``: linear probe on frozen features of labelled .betons (top-1/top-5)."""
import json

from .evaluation import linear_evaluation


def run(settings):
    print(json.dumps(linear_evaluation(settings.eval, settings.linear), indent=2))
    return 0
