"""What an invariance score is asked for, without the score's imports (torch): the K reported,
and the bootstrap interval's settings with their bounds. eval.py declares every command's
settings from these, so that a typo in any command is one line at once."""
import dataclasses

REPORTED_K = (10, 25)
# Fewer resamples put the 2.5 % tail on two or three replicates: the interval would be noise.
MIN_RESAMPLES = 100
# targets: the targets, each with all its sets (new objects or classes); sets: the sets within
# each target (these targets, new sets of them).
RESAMPLE_UNITS = ('targets', 'sets')


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """The confidence interval's settings: ``resamples`` (at least MIN_RESAMPLES) drawn from
    ``numpy.random.default_rng(seed)``, a two-sided ``confidence`` level in (0, 1), and the
    resampled ``unit`` (:data:`RESAMPLE_UNITS`, ``fastssl.invariance.bootstrap_draws``)."""
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    unit: str = 'targets'
