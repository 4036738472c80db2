"""Shaking conditioned on what the stations recorded (ShakeMap's method).

Worden, Thompson, Baker, Bradley, Luco and Wald (2018), "Spatial and spectral interpolation of ground-motion
intensity measure observations", BSSA 108(2):866-875, as ShakeMap 4 and OpenQuake's conditioned
ground-motion fields apply it: the ground-motion model's ln residuals at the cells and at the stations are
jointly normal, a between-event term (τ, one value for the event) plus a within-event term (φ) correlated in
space with the same model as the ranges (Jayaram and Baker 2009, ρ(h) = exp(-3h / 8.5 km),
:data:`~features.domains.earthquake.consequences.CORRELATION_KM`). Given the stations' residuals r (ln
recorded PGA - ln BSSA14 median at the station), a cell's residual is normal with mean C_co C_oo⁻¹ r and
variance C_cc - C_co C_oo⁻¹ C_oc. Near a station the cell moves to its record and its scatter narrows; far
from every station only the event term, estimated from all of them, moves it.

A station's Vs30 is its nearest cell's (the records name none). Every record is taken with a small
measurement variance (:data:`RECORD_VARIANCE`): the instrument and the site term of a station standing
between cells are not exact, and it keeps C_oo well conditioned when two stations stand close together.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import timeseries as ts
from features.spatial import haversine_km, nearest

#: Variance (ln units²) of a record about the true shaking at its station: 0.1² (about 10%), chosen.
RECORD_VARIANCE = 0.1**2
#: A record below this (g) is read as this: a station that did not trigger still says "barely shaken".
MIN_PGA_G = 1e-4


def correlation(h_km, length_km: float) -> np.ndarray:
    """Jayaram and Baker (2009) PGA within-event correlation at separation ``h_km``."""
    return np.exp(-3.0 * np.asarray(h_km, dtype=float) / length_km)


def station_motion(src, conditions: dict, records: pd.DataFrame) -> dict:
    """BSSA14 at each record's station (Vs30 of its nearest cell), with the scatter held as the cells' is."""
    from features.domains.earthquake.consequences import motion_at

    cells = ts.cell_arrays(src)
    lat, lon = records["lat"].to_numpy(float), records["lon"].to_numpy(float)
    vs30 = cells["vs30_mps"][:-1][nearest(lat, lon, cells["lat"][:-1], cells["lon"][:-1])]
    return motion_at(conditions, lat, lon, vs30)


def condition(src, gm: dict, conditions: dict, records: pd.DataFrame, length_km: float) -> dict:
    """``gm`` (BSSA14 at every cell, :func:`~features.domains.earthquake.consequences.motion`) conditioned
    on ``records`` (``lat``, ``lon``, ``pga_g``: one row per station).

    Returns a new dict: ``ln_pga`` the conditional mean and ``sigma`` the conditional total standard
    deviation (ln units) per cell; ``prior`` the unconditioned ``sigma`` and ``tau``; ``stations`` what
    :func:`conditioned_samples` needs (positions, within-event φ, the weights W (cells, stations) and the
    residuals). Without records, ``gm`` itself."""
    if records is None or records.empty:
        return gm
    cells = ts.cell_arrays(src)
    lat, lon = cells["lat"][:-1], cells["lon"][:-1]
    at = station_motion(src, conditions, records)
    s_lat, s_lon = records["lat"].to_numpy(float), records["lon"].to_numpy(float)
    tau = float(np.ravel(gm["tau"])[0])
    phi_c = np.sqrt(np.maximum(gm["sigma"] ** 2 - tau**2, 0.0))
    phi_s = np.sqrt(np.maximum(at["sigma"] ** 2 - tau**2, 0.0))
    residual = np.log(np.maximum(records["pga_g"].to_numpy(float), MIN_PGA_G)) - at["ln_pga"]
    c_oo = tau**2 + np.outer(phi_s, phi_s) * correlation(
        haversine_km(s_lat[:, None], s_lon[:, None], s_lat[None, :], s_lon[None, :]), length_km)
    c_oo += RECORD_VARIANCE * np.eye(len(s_lat))
    c_co = tau**2 + phi_c[:, None] * phi_s[None, :] * correlation(
        haversine_km(lat[:, None], lon[:, None], s_lat[None, :], s_lon[None, :]), length_km)
    weights = np.linalg.solve(c_oo, c_co.T).T  # (cells, stations): C_co C_oo⁻¹ (C_oo is symmetric)
    variance = np.maximum(gm["sigma"] ** 2 - np.sum(weights * c_co, axis=1), 1e-6)
    return {**gm, "ln_pga": gm["ln_pga"] + weights @ residual, "sigma": np.sqrt(variance),
            "prior": {"sigma": gm["sigma"], "tau": tau},
            "stations": {"lat": s_lat, "lon": s_lon, "phi": phi_s, "weights": weights, "residual": residual}}


def conditioned_samples(gm: dict, positions: np.ndarray, block: np.ndarray, centres: tuple[np.ndarray, np.ndarray],
                        samples: int, seed: int, length_km: float) -> np.ndarray:
    """(samples, len(positions)) ln PGA fields conditioned on the records, by conditioning unconditional
    fields (conditional simulation: a field drawn from the prior, then moved by W times the gap between
    the records and that field at the stations; its spread is the conditional covariance).

    The within-event term is drawn jointly at the blocks' centres (``centres``, the cells of a block taking
    its value, as for the unconditioned ranges) and at the stations."""
    st = gm["stations"]
    b_lat, b_lon = centres
    lat = np.concatenate([b_lat, st["lat"]])
    lon = np.concatenate([b_lon, st["lon"]])
    corr = correlation(haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :]), length_km)
    chol = np.linalg.cholesky(corr + 1e-9 * np.eye(len(lat)))
    rng = np.random.default_rng(seed)
    between = rng.standard_normal(samples)
    within = (chol @ rng.standard_normal((len(lat), samples))).T  # (samples, blocks + stations)
    noise = np.sqrt(RECORD_VARIANCE) * rng.standard_normal((samples, len(st["lat"])))
    tau, prior = gm["prior"]["tau"], gm["prior"]["sigma"][positions]
    phi = np.sqrt(np.maximum(prior**2 - tau**2, 0.0))
    n_blocks = len(b_lat)
    at_cells = tau * between[:, None] + phi[None, :] * within[:, block[positions]]
    at_stations = tau * between[:, None] + st["phi"][None, :] * within[:, n_blocks:] + noise
    return gm["ln_pga"][positions][None, :] + at_cells - at_stations @ st["weights"][positions].T
