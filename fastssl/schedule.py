"""The learning-rate schedule: linear scaling with the global batch, linear warmup, cosine
decay; a pure function of the (fractional) epoch, so a resumed run needs no state for it."""
import math


def learning_rate(optim, epochs, epoch_progress, batch_size):
    """lr at fractional epoch: linear scaling by batch/256, linear warmup, cosine decay."""
    base = optim.lr * batch_size / 256
    if epoch_progress < optim.warmup_epochs:
        return base * epoch_progress / optim.warmup_epochs
    span = max(epochs - optim.warmup_epochs, 1e-8)
    return base * 0.5 * (1.0 + math.cos(math.pi * (epoch_progress - optim.warmup_epochs) / span))
