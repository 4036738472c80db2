"""The embedded Incheon data set: a deterministic generator of raw files in the real source formats."""
