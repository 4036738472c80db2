"""The embedded data set of the configured city (Incheon by default): a deterministic generator of raw files
in the real source formats, its geography, tide and seismic sources read from the city config.

``generate(settings)`` writes every source under ``settings.raw_dir`` and the true expected values behind
the labels (for evaluation only) under ``settings.truth_dir``.
"""

from features.embedded.generate import generate

__all__ = ["generate"]
