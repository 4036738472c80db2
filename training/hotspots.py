"""Traffic hotspot methods: expected accidents per cell-year from the record before ``as_of``, and their
back-test as the field judges hotspot identification.

Methods (each gives every cell an expected accidents per year; the period's expectation is that times
:func:`features.domains.traffic.forecast.exposure_years`):

- ``counts``: the cell's accidents per year over the whole record (the naive ranking);
- ``counts_3y``: the same over the last 3 years;
- ``eb``: the Highway Safety Manual's network screening (AASHTO 2010, Part B ch. 4 and Part C appendix A):
  a safety performance function, negative binomial (NB2) regression of the cell's accidents over the last
  :data:`EB_YEARS` years on its exposure (log traffic volume, log road length by class, junctions, stops,
  schools, commercial share; an intercept alone, a city-wide function, where the city has no static
  layers), with years as exposure; then the Empirical Bayes estimate
  ``EB = w * mu * Y + (1 - w) * N`` with ``w = 1 / (1 + k * mu * Y)`` (HSM eq. A-5/A-6; ``mu`` the
  function's accidents per year, ``Y`` the years, ``N`` the observed count, ``k`` the fitted overdispersion),
  per year;
- ``excess``: the EB estimate less the function's prediction (the excess expected accidents, the HSM's
  potential for safety improvement), per year;
- ``model``: a LightGBM Poisson regression on the forecast table (features/domains/traffic/forecast.py)
  plus the cell's ``spf_rate`` and ``eb_rate`` at the same origin: trained on the origins before ``as_of``,
  each labelled with the year after it. It needs two years of record; with less, it is not fitted.

Back-test (:func:`backtest`): rolling yearly splits, each method refitted on the record before 1 January of
year y and scored on year y, with Cheng and Washington's criteria (Cheng, W. and Washington, S. (2008),
"New criteria for evaluating methods of identifying hot spots", Transportation Research Record 2083,
76-85): the share of the year's accidents and ECLO in the top 5% and the top 100 cells (95% bootstrap
intervals over the year's accidents), the site consistency test (accidents of the year at the sites
flagged), the method consistency test (sites flagged both at y and at y + 1) and the total rank difference
(over the sites flagged at y, the sum of |rank at y - rank at y + 1|; lower is steadier).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.domains.traffic import forecast as fc
from features.errors import DataError

METHODS = ("model", "eb", "excess", "counts", "counts_3y")
FALLBACK = "eb"  # the field's reference, when the model cannot be fitted or the back-test cannot choose
TIE_ORDER = ("eb", "counts", "counts_3y", "model", "excess")  # a tie goes to the reference, then the simpler
EB_YEARS = 3  # the HSM screens on 3 to 5 years of counts; a drifting network favours the recent end
SPF_LOG = ("traffic_volume", "road_km_arterial", "road_km_collector", "road_km_local", "intersections",
           "bus_stops", "schools", "pop_day")
SPF_RAW = ("commercial_share",)
MODEL_FEATURES = (*fc.FEATURES, "spf_rate", "eb_rate")
MONOTONE = dict.fromkeys(("rate_1y", "rate_3y", "rate_all", "neighbour_rate_3y", "district_rate_3y", "spf_rate",
                          "eb_rate", "traffic_volume", "road_km_arterial", "road_km_collector", "road_km_local",
                          "intersections"), 1)
# The quick profile's settings for a small table (a few thousand cells a year): shallow trees, slow rate; one
# thread, as the service runs one worker per core (threads on a busy core spin rather than help).
LGB_PARAMS = {"objective": "poisson", "learning_rate": 0.03, "num_leaves": 15, "min_data_in_leaf": 40,
              "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
              "monotone_constraints_method": "advanced", "num_threads": 1, "deterministic": True, "seed": 7,
              "verbosity": -1}
LGB_ROUNDS = 300
TOP_SHARE = 0.05
TOP_N = 100
BOOTSTRAP = 1000


@dataclass
class Screening:
    """The HSM pieces at one origin, per cell (grid order)."""

    spf_rate: np.ndarray  # the function's accidents per year (mu)
    eb_rate: np.ndarray  # Empirical Bayes accidents per year
    weight: np.ndarray  # w, the function's weight in the EB estimate
    observed: np.ndarray  # N, accidents over the window
    years: float  # Y, the window's years
    k: float  # overdispersion
    city_wide: bool  # the function has no exposure terms (no static layers)


@dataclass
class Fitted:
    """Every method fitted at ``as_of``: expected accidents per cell-year (grid order) by method."""

    as_of: pd.Timestamp
    rates: dict[str, np.ndarray]
    screening: Screening
    rows: pd.DataFrame  # the forecast rows at as_of with spf_rate and eb_rate
    booster: lgb.Booster | None = None
    notes: list[str] = field(default_factory=list)


def _spf_design(rows: pd.DataFrame) -> pd.DataFrame:
    cols = {}
    for c in SPF_LOG + SPF_RAW:
        v = rows[c].to_numpy(dtype=float)
        if np.isnan(v).all() or np.nanstd(v) == 0:
            continue
        v = np.log1p(np.nan_to_num(v)) if c in SPF_LOG else np.nan_to_num(v)
        cols[c] = (v - v.mean()) / v.std()
    X = pd.DataFrame(cols, index=rows.index)
    X.insert(0, "const", 1.0)
    return X


def screening(src, as_of) -> Screening:
    """The safety performance function and Empirical Bayes estimate at ``as_of`` (computed once per
    data and origin): NB2 fitted by maximum likelihood (statsmodels), Poisson with a moment estimate of
    ``k`` if that fails to converge."""
    as_of = pd.Timestamp(as_of)
    return fc.data_memo(src, f"screening.{as_of.isoformat()}", lambda: _screening(src, as_of))


def _screening(src, as_of: pd.Timestamp) -> Screening:
    import statsmodels.api as sm

    first, _ = fc.record_span(src)
    lo = max(first, as_of - pd.DateOffset(years=EB_YEARS))
    years = max((as_of - lo) / pd.Timedelta(days=1), 1.0) / fc.YEAR_DAYS
    counts = fc.period_counts(src, lo, as_of)["accidents"].to_numpy()
    if not counts.sum():
        raise DataError(f"no accident on the grid in the {years:.1f} years before {as_of:%Y-%m-%d}: nothing to fit a "
                        "safety performance function to (a gap in the record?)", column="as_of")
    X = _spf_design(fc.static_features(src))
    exposure = np.full(len(counts), years)
    k = math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = sm.NegativeBinomial(counts, X, loglike_method="nb2", exposure=exposure).fit(disp=0, maxiter=200)
            k = float(fit.params.iloc[-1])
            mu = np.exp(X.to_numpy() @ fit.params.iloc[:-1].to_numpy())
            if not (fit.mle_retvals.get("converged", False) and np.isfinite(k) and k > 0):
                raise ValueError("no convergence")
        except Exception:  # noqa: BLE001 - a singular or flat design: the moment estimate below
            fit = sm.GLM(counts, X, family=sm.families.Poisson(), exposure=exposure).fit()
            mu = np.exp(X.to_numpy() @ fit.params.to_numpy())
            m = mu * years
            k = float(max(((counts - m) ** 2 - counts).sum() / (m ** 2).sum(), 1e-6))
    w = 1.0 / (1.0 + k * mu * years)
    eb = (w * mu * years + (1 - w) * counts) / years
    return Screening(mu, eb, w, counts, float(years), k, city_wide=X.shape[1] == 1)


def method_rows(src, as_of) -> pd.DataFrame:
    """:func:`features.domains.traffic.forecast.forecast_rows` at ``as_of`` with ``spf_rate`` and ``eb_rate``."""
    s = screening(src, as_of)
    return fc.forecast_rows(src, as_of).assign(spf_rate=s.spf_rate.astype(np.float32),
                                               eb_rate=s.eb_rate.astype(np.float32))


def _training(src, as_of) -> pd.DataFrame:
    parts = []
    for o in fc.origins(src, as_of):
        labels = fc.period_counts(src, o, o + pd.DateOffset(years=1))
        parts.append(pd.concat([method_rows(src, o), labels], axis=1))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def fit_model(src, as_of) -> lgb.Booster | None:
    """The LightGBM forecast model trained on the origins before ``as_of`` (None with fewer than one)."""
    table = _training(src, as_of)
    if table.empty:
        return None
    data = lgb.Dataset(table[list(MODEL_FEATURES)], label=table["accidents"].to_numpy(float),
                       free_raw_data=True)
    params = {**LGB_PARAMS, "monotone_constraints": [MONOTONE.get(f, 0) for f in MODEL_FEATURES]}
    return lgb.train(params, data, num_boost_round=LGB_ROUNDS)


def fit(src, as_of, methods=METHODS) -> Fitted:
    """Every method in ``methods`` fitted on the record before ``as_of`` (computed once per data)."""
    as_of = pd.Timestamp(as_of)
    return fc.data_memo(src, f"fit.{as_of.isoformat()}.{','.join(methods)}", lambda: _fit(src, as_of, tuple(methods)))


def _fit(src, as_of: pd.Timestamp, methods: tuple[str, ...]) -> Fitted:
    rows = method_rows(src, as_of)
    s = screening(src, as_of)
    rates = {"counts": np.nan_to_num(rows["rate_all"].to_numpy(float)),
             "counts_3y": np.nan_to_num(rows["rate_3y"].to_numpy(float)),
             "eb": s.eb_rate, "excess": s.eb_rate - s.spf_rate}
    rates = {m: r for m, r in rates.items() if m in methods}
    out = Fitted(as_of, rates, s, rows)
    if s.city_wide:
        out.notes.append("the safety performance function is city-wide (an intercept only): the city has no "
                         "static layers of exposure")
    if "model" in methods:
        booster = fit_model(src, as_of)
        if booster is None:
            out.notes.append(f"the model needs {fc.MIN_HISTORY_YEARS + 1:g} years of record before "
                             f"{as_of:%Y-%m-%d}; it is not fitted")
        else:
            out.booster = booster
            out.rates["model"] = booster.predict(rows[list(MODEL_FEATURES)])
    return out


def contributions(fitted: Fitted, positions) -> np.ndarray:
    """TreeSHAP contributions (log scale; last column the bias) of the model for the cells at ``positions``."""
    rows = fitted.rows.iloc[np.asarray(positions, dtype=np.int64)]
    return fitted.booster.predict(rows[list(MODEL_FEATURES)], pred_contrib=True)


# --- back-test --------------------------------------------------------------------------------------


def splits(src) -> list[pd.Timestamp]:
    """1 January of every year with a year of record before it and the whole year inside the record."""
    first, end = fc.record_span(src)
    out = []
    for year in range(first.year + 1, end.year + 1):
        a = pd.Timestamp(year=year, month=1, day=1)
        if fc.has_history(first, a) and a + pd.DateOffset(years=1) <= end + pd.Timedelta(days=7):
            out.append(a)
    return out


def order(score: np.ndarray) -> np.ndarray:
    """Cell positions best first (ties: grid order)."""
    score = np.nan_to_num(np.asarray(score, dtype=float), nan=-np.inf)
    return np.lexsort((np.arange(len(score)), -score))


def _share_ci(top: np.ndarray, acc_pos: np.ndarray, weights: np.ndarray, rng) -> tuple[float, float, float]:
    """Share of the accidents' ``weights`` at the ``top`` cells, with a 95% bootstrap interval (the year's
    accidents resampled with replacement)."""
    flagged = np.isin(acc_pos, top)
    total = weights.sum()
    share = float(weights[flagged].sum() / total) if total else math.nan
    if rng is None or not len(acc_pos) or not total:
        return share, math.nan, math.nan
    draws = rng.integers(0, len(acc_pos), size=(BOOTSTRAP, len(acc_pos)))
    w = weights[draws]
    boot = (w * flagged[draws]).sum(axis=1) / w.sum(axis=1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return share, float(lo), float(hi)


def backtest(src, until=None, methods=METHODS, seed: int = 0, consistency: bool = True,
             bootstrap: bool = True) -> pd.DataFrame:
    """One row per (split, method): the split's 1 January (``as_of``), the scores on its year (see the
    module), ``fitted`` (False where the method could not be fitted: its scores are NaN). Splits whose year
    ends after ``until`` are left out (None: every split). Without ``consistency`` the methods are not
    refitted a year later (no ``mct``, ``trdt``); without ``bootstrap`` the shares have no intervals."""
    rng = np.random.default_rng(seed)
    chosen = [a for a in splits(src) if until is None or a + pd.DateOffset(years=1) <= pd.Timestamp(until)]
    n = len(src.grid.cells)
    k5 = int(np.ceil(TOP_SHARE * n))
    acc = fc.records(src)
    out = []
    for a in chosen:
        b = a + pd.DateOffset(years=1)
        now = fit(src, a, methods)
        after = fit(src, b, methods) if consistency else None
        year = acc[(acc["time"] >= a) & (acc["time"] < b)]
        pos, eclo = year["cell_pos"].to_numpy(), year["eclo"].to_numpy(float)
        for m in methods:
            row = {"as_of": a, "method": m, "fitted": m in now.rates, "accidents": len(year), "eclo": eclo.sum()}
            if m in now.rates:
                ranked = order(now.rates[m])
                for label, k in (("top5", k5), (f"top{TOP_N}", TOP_N)):
                    for target, w in (("accidents", np.ones(len(pos))), ("eclo", eclo)):
                        share, lo, hi = _share_ci(ranked[:k], pos, w, rng if bootstrap else None)
                        row |= {f"{label}_{target}": share, f"{label}_{target}_lo": lo, f"{label}_{target}_hi": hi}
                row["sct"] = int(np.isin(pos, ranked[:k5]).sum())
                if after is not None and m in after.rates:
                    nxt = order(after.rates[m])
                    rank_now, rank_next = np.empty(n, int), np.empty(n, int)
                    rank_now[ranked], rank_next[nxt] = np.arange(1, n + 1), np.arange(1, n + 1)
                    row["mct"] = int(len(np.intersect1d(ranked[:k5], nxt[:k5])))
                    row["trdt"] = int(np.abs(rank_now[ranked[:k5]] - rank_next[ranked[:k5]]).sum())
            out.append(row)
    return pd.DataFrame(out)


def choose(results: pd.DataFrame, target: str = "accidents") -> tuple[str, str]:
    """The method with the highest mean top-5% share of ``target`` over the splits where every candidate
    was fitted, and why; :data:`FALLBACK` when no split qualifies."""
    if results.empty:
        return FALLBACK, "no complete year to back-test on: the Highway Safety Manual's Empirical Bayes by default"
    col = f"top5_{target}"
    fitted = results.pivot(index="as_of", columns="method", values="fitted").fillna(False)
    complete = fitted.index[fitted.all(axis=1)]
    if len(complete) == 0:
        complete, candidates = fitted.index, [m for m in fitted.columns if fitted[m].all()]
    else:
        candidates = list(fitted.columns)
    scores = results[results["as_of"].isin(complete) & results["method"].isin(candidates)].groupby("method")[col].mean()
    if scores.dropna().empty:
        return FALLBACK, "no method could be back-tested: the Highway Safety Manual's Empirical Bayes by default"
    # a tie (equal to 0.1 point) goes to the field's reference first: EB, then past counts, then the model
    preference = {m: i for i, m in enumerate(TIE_ORDER)}
    scores = scores.dropna()
    best = min(scores.index, key=lambda m: (-round(scores[m], 3), preference.get(m, len(preference))))
    tied = [m for m in scores.index if m != best and round(scores[m], 3) == round(scores[best], 3)]
    years = ", ".join(f"{a:%Y}" for a in complete)
    listed = ", ".join(f"{m} {v:.1%}" for m, v in scores.sort_values(ascending=False).items())
    tie = f"; tied with {', '.join(tied)}, taken in the order {', '.join(TIE_ORDER)}" if tied else ""
    return str(best), (f"best mean top-5% share of {target} ({scores[best]:.1%}) in the back-test on {years} "
                       f"({listed}){tie}")
