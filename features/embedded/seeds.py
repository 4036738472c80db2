"""Independent, reproducible random streams: one per named part of the generator."""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, name: str) -> np.random.Generator:
    """A generator for ``name`` under ``seed``.

    The name (not the call order) picks the stream, so adding or reordering parts of the generator
    never changes the numbers another part draws.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),)))
