"""FFCV pipeline pieces: Numba-compiled decode-once multi-view ops and loader builders."""
from . import ffcv_compat  # noqa: F401  (before any FFCV loader is built)
