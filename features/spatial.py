"""Small geodesy helpers shared by the generator and the feature builders."""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km, broadcasting over its arguments."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(a, dtype=float)) for a in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def nearest(lat, lon, ref_lat, ref_lon) -> np.ndarray:
    """Index into the reference points of the nearest one to each point."""
    d = haversine_km(np.asarray(lat)[:, None], np.asarray(lon)[:, None],
                     np.asarray(ref_lat)[None, :], np.asarray(ref_lon)[None, :])
    return d.argmin(axis=1)
