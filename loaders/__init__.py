"""FFCV pipeline pieces: Numba-compiled decode-once multi-view ops and loader builders."""
