"""Drift and input-quality monitoring: what the service answered, against what it answered before.

- **Served sample** (``served_rows``): the engine records up to 64 random rows of every answer it builds
  (features and prediction), with the *data time* it answered for (``at``; None for ``/predict`` records,
  which are left out of every comparison below) and where it came from (the service or the live cycle).
- **Window**: the answers for the last ``hours`` of data time, up to the newest answered data time (not the
  wall clock: a replay or a feed an hour behind is judged on its own hours); widened to the newest data
  times holding :data:`MIN_ROWS` rows when it holds fewer (fine dust answers once a day), at most
  :data:`MAX_WINDOW`.
- **Reference**: the answers at the *same hours of day* over the :data:`TRAILING` window of data time before
  the window, each hour weighted as in the window, when that holds at least :data:`MIN_REFERENCE_ROWS` rows;
  else the champion's training table *of the same month(s)* (``monitor_references``, made by ``urban-safety
  serve``: deciles, shares, missing share, min and max of up to 50,000 rows, overall and per month of the
  table's time column). Each window row is binned on its own month's deciles when the window spans months.
- **Not drift** (``DomainSpec.not_drift``): scenario conditions (the earthquake's magnitude and epicentre,
  flood's lead) and calendar positions (day of year, hour, weekday) move with the question or the date;
  they are listed as exempt with the reason, never as a finding.
- **Verdicts**. A moved distribution is a *report line*, never an alert: population stability index (PSI)
  over the reference's bins >= 0.25 is a major shift (status ``shift``), 0.1-0.25 a moderate one (the usual
  rule of thumb: N. Siddiqi, *Credit Risk Scorecards*, Wiley 2006, ch. 8). Bins are the reference's deciles,
  but a value holding a tenth of the rows (no rain) is a bin of its own. The rule of thumb assumes many
  independent values: a value shared by the rows of one answer (a station's reading in every cell it
  serves, a city-wide figure) counts once, a verdict needs 30 such values, and the level rises to what
  sampling alone reaches once in a hundred, (1/n + 1/m) chi2(B - 1): PSI is the symmetric
  Kullback-Leibler (Jeffreys) divergence, whose scaled sample value is asymptotically chi-square under no
  change, like the likelihood-ratio statistic (the PSI form is derived in B. Yurdakul's dissertation
  *Statistical Properties of Population Stability Index*, Western Michigan University, 2018, which could
  not be read here). An *input-quality* problem, one that changes answers, opens the domain's operator
  alert (``live.alerts.data_quality``, lead ``INPUTS_LEAD``) and is judged on the answers of the newest
  :data:`RECENT_HOURS` data hours, so that it shows while it lasts and clears at the first clean check:
  (a) a feature missing in :data:`MISSING_EXTRA` (20 points) more of those answers than in the reference
  (or in training, whichever is lower: a trailing reference would otherwise absorb a lasting outage);
  (b) more than :data:`OUT_OF_RANGE_SHARE` of their values outside the training table's observed range
  widened by :data:`RANGE_MARGIN` of its width (a tree answers there as at the edge of what it learnt);
  (c) a live source the domain reads (fed through the store, not only back-filled) that has reported
  nothing for an hour whose lateness window passed (``live.store.STALE_AFTER``, the source's time rule,
  against the one clock): the answers then fall back or go unknown, and the problem says which. A silent
  feed is one alert (named by the source) whatever domains read it; their own problems meanwhile (the rain
  missing) are told in it rather than as alerts of their own.
- **Performance without labels** (floods and accidents are known days later): for a binary domain,
  confidence-based performance estimation (CBPE; NannyML's documentation, "Estimation of Performance of the
  Monitored Model: Confidence-based Performance Estimation", nannyml.readthedocs.io, how_it_works/
  performance_estimation): the expected confusion matrix at the alert threshold and the expected ROC and PR
  AUC from the served probabilities, *assuming they are calibrated* (no concept drift, no inputs outside
  training). For a count domain, the mean Poisson deviance the model expects if the counts follow its
  predicted means (a yardstick for the realised deviance once labels arrive, not an estimate of error). For
  regression (fine dust, earthquake) none is estimated: a point prediction carries no confidence to use.

Retention (``URBAN_SAFETY_MONITOR_KEEP_DAYS``): :data:`KEEP_DAYS` of data time before each domain's newest
answer (the trailing window plus the longest window, and a day), and as long on the clock.

Why not Evidently: the numbers needed are a few lines on numpy and the report a page of matplotlib figures
(already a dependency); Evidently would add some hundred megabytes of dependencies whose report API has
changed in every minor release.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import threading
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from live.db import METADATA, now_kst, writing

BINS = 10
PSI_MODERATE, PSI_MAJOR = 0.10, 0.25
MISSING_EXTRA = 0.20  # recent share missing above the reference's: an input-quality problem
OUT_OF_RANGE_SHARE = 0.10  # recent values outside the training range above this share: an input-quality problem
MIN_ROWS = 200  # fewer window values than this: no PSI verdict on a feature
MIN_VALUES = 30  # fewer independent values (see independent()) than this: no PSI verdict either
MIN_RECENT_ROWS = 50  # fewer recent answers than this: no missing or range verdict
RECENT_HOURS = 1  # input quality is judged on the answers of the newest data hour: it clears with the first whole one
#: How far past the training range (a share of its width) a value must lie to count as outside it: a tree
#: answers beyond its range as at the edge, so a value just past it (a hot day, float32 rounding of the
#: stored table) changes little; a value well past it (a unit error, a stuck sensor) is the problem.
RANGE_MARGIN = 0.05
TRAILING = timedelta(days=14)  # the served reference: the same hours of day over this much data time
MIN_REFERENCE_ROWS = 500  # fewer served rows there: the training table's months instead
MAX_WINDOW = timedelta(days=7)  # how far a window holding too few rows widens
CHECK_HOURS = 24.0  # the live cycle's window
SAMPLE_PER_ANSWER = 64
REFERENCE_ROWS = 50_000  # rows of the training table profiled
READ_ROWS = 20_000  # at most this many served rows are read into a window or a reference (uniform sample)
PROFILE_VERSION = 2  # monitor_references made before per-month profiles and ranges are made again
KEEP_DAYS = float(os.environ.get("URBAN_SAFETY_MONITOR_KEEP_DAYS")
                  or (TRAILING + MAX_WINDOW).days + 1)
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

SERVED = sa.Table(
    "served_rows", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("domain", sa.Text, nullable=False, index=True),
    sa.Column("origin", sa.Text, nullable=False),  # service | cycle
    sa.Column("at", sa.DateTime),  # the data time answered for (None: /predict records)
    sa.Column("recorded_at", sa.DateTime, nullable=False, index=True),
    sa.Column("features", sa.Text, nullable=False),  # JSON {feature: value or null}
    sa.Column("prediction", sa.Float),
    sa.Index("served_rows_domain_at", "domain", "at"),  # windows and retention read by data time
)
REFERENCES = sa.Table(
    "monitor_references", METADATA,
    sa.Column("domain", sa.Text, primary_key=True),
    sa.Column("model", sa.Text, nullable=False),  # the champion it describes (BentoML tag)
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("profile", sa.Text, nullable=False),  # JSON, see training_profile()
)


# --- profiles and their comparison ----------------------------------------------------------------
def _column(values: np.ndarray, weights: np.ndarray | None = None, answers: np.ndarray | None = None) -> dict:
    """Bin edges (inner), each bin's share, share missing, mean, min and max (weighted when given), and ``n``
    the number of independent values (:func:`independent`; ``answers``: each row's answer)."""
    values = np.asarray(values, dtype=float)
    w = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=float)
    finite = np.isfinite(values)
    total = w.sum()
    missing = float(1.0 - w[finite].sum() / total) if total > 0 else 1.0
    if not finite.any():
        return {"edges": [], "shares": [], "missing": missing, "mean": None, "min": None, "max": None, "n": 0}
    n = independent(values, answers)
    v, wv = values[finite], w[finite]
    order = np.argsort(v, kind="stable")
    v, wv = v[order], wv[order]
    inner = _edges(v, wv)
    counts = np.bincount(np.searchsorted(inner, v, side="right"), weights=wv, minlength=len(inner) + 1)
    return {"edges": inner.tolist(), "shares": (counts / counts.sum()).tolist(), "missing": missing,
            "mean": float(np.average(v, weights=wv)), "min": float(v[0]), "max": float(v[-1]), "n": n}


def independent(values: np.ndarray, answers: np.ndarray | None = None) -> int:
    """How many independent values ``values`` hold: a value shared by the rows of one answer (one station's
    reading in every cell it serves, a city-wide figure, the same cells asked for several what-ifs) counts
    once; ``answers`` gives each row's answer (its data time), None: every row its own."""
    finite = np.isfinite(values)
    if answers is None:
        return int(finite.sum())
    return int(len(pd.DataFrame({"a": np.asarray(answers)[finite], "v": values[finite]}).drop_duplicates()))


def shift_level(n: int, inverse_m: float, bins: int, major: bool = True) -> float:
    """The PSI from which a feature reads as shifted: the rule of thumb (0.25 major, 0.1 moderate), or what
    sampling alone reaches once in a hundred (major; once in twenty: moderate) when the values are few: PSI
    between samples of n and m independent values over B bins is about (1/n + 1/m) chi2(B - 1) (the
    asymptotic law of the Jeffreys divergence under no change; see the module docstring)."""
    from scipy.stats import chi2

    noise = (1.0 / max(n, 1) + inverse_m) * chi2.ppf(0.99 if major else 0.95, max(bins - 1, 1))
    return max(PSI_MAJOR if major else PSI_MODERATE, float(noise))


def _edges(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Inner bin edges of sorted values ``v`` (weights ``w``): deciles, except that a value holding a tenth of
    the weight or more (no rain, a flag's 0 and 1) is a bin of its own and the rest is cut into deciles of its
    own, so that a zero-inflated input (rain) still has bins where it rains."""
    values, first = np.unique(v, return_index=True)
    mass = np.add.reduceat(w, first) / w.sum()
    points = values[mass >= 1.0 / BINS]
    rest = ~np.isin(v, points)
    inner = np.array([])
    k = BINS - len(points)
    if rest.any() and k > 1:
        vr, wr = v[rest], w[rest]
        cum = (np.cumsum(wr) - 0.5 * wr) / wr.sum()  # weighted quantiles (equal weights: the midpoint rule)
        inner = np.interp(np.linspace(0, 1, k + 1), cum, vr)[1:-1]
    return np.unique(np.concatenate([inner, points, np.nextafter(points, np.inf)]))


def profile(X: pd.DataFrame, prediction: np.ndarray, weights: np.ndarray | None = None,
            answers: np.ndarray | None = None) -> dict:
    """Per feature (and the prediction): bin edges and shares, share missing, mean, min, max, independent
    values (``answers``: each row's answer, see :func:`independent`)."""
    return {"rows": len(X), "features": {c: _column(X[c].to_numpy(float), weights, answers) for c in X.columns},
            "prediction": _column(prediction, weights, answers)}


def training_profile(X: pd.DataFrame, prediction: np.ndarray, times) -> dict:
    """The stored reference of a champion: :func:`profile` of its training rows, and one per calendar month
    of ``times`` (the table's time column: the issue or scenario time)."""
    months = pd.DatetimeIndex(pd.to_datetime(np.asarray(times))).month.to_numpy()
    prediction = np.asarray(prediction, dtype=float)
    out = {"version": PROFILE_VERSION, **profile(X, prediction), "months": {}}
    for month in np.unique(months):
        take = months == month
        out["months"][str(int(month))] = profile(X.loc[take], prediction[take])
    return out


def psi(reference: dict, values: np.ndarray) -> float | None:
    """Population stability index of ``values`` over the reference's bins (None without values)."""
    return _psi(*_histogram([reference], np.zeros(len(values), int), np.asarray(values, dtype=float)))


def _histogram(refs: list[dict], groups: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(observed counts, expected counts) over bin numbers: each value binned on the bins of its
    group's reference (a window spanning months: each row on its own month's), the expectation the mixture
    of those references' shares."""
    size = max([len(r["shares"]) for r in refs if r] or [0])
    observed, expected = np.zeros(size), np.zeros(size)
    finite = np.isfinite(values)
    for g in np.unique(groups[finite]):
        ref = refs[g]
        if not ref or not ref["shares"]:
            continue
        v = values[finite & (groups == g)]
        observed += np.bincount(np.searchsorted(ref["edges"], v, side="right"), minlength=size)[:size]
        expected[:len(ref["shares"])] += len(v) * np.asarray(ref["shares"])
    return observed, expected


def _psi(observed: np.ndarray, expected: np.ndarray) -> float | None:
    if observed.sum() == 0 or expected.sum() == 0:
        return None
    served = np.clip(observed / observed.sum(), 1e-4, None)
    ref = np.clip(expected / expected.sum(), 1e-4, None)
    return float(np.sum((served - ref) * np.log(served / ref)))


def _shares_of(refs: list[dict], groups: np.ndarray, key: str) -> float | None:
    """The rows' mean of each one's reference ``key`` (the missing share a mixture of references expects)."""
    if not len(groups):
        return None
    values = [refs[g].get(key) if refs[g] else None for g in groups]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def compare(reference: dict | list[dict], served: pd.DataFrame, *, groups: np.ndarray | None = None,
            recent: pd.DataFrame | None = None, recent_groups: np.ndarray | None = None,
            exempt: dict[str, str] | None = None, floor: dict[str, float] | None = None,
            limits: dict[str, tuple[float, float]] | None = None, recent_label: str = "recent answers",
            answers: np.ndarray | None = None) -> dict:
    """Each feature of ``served`` (the window) against ``reference`` (one profile, or one per group with each
    served row's ``groups`` index): PSI and missing share, a report line when the PSI reaches
    :func:`shift_level` for its independent values (``answers``: each served row's answer, its data time);
    input-quality problems judged on ``recent`` (the newest answers; default: the window): missing share
    above the reference's (capped by ``floor``, the training's) by MISSING_EXTRA, or values outside
    ``limits`` (default: the reference's min and max) in more than OUT_OF_RANGE_SHARE. ``exempt``: feature ->
    why it is not drift (never a finding)."""
    refs = reference if isinstance(reference, list) else [reference]
    groups = np.zeros(len(served), int) if groups is None else np.asarray(groups)
    if recent is None:
        recent, recent_groups = served, groups
    recent_groups = np.zeros(len(recent), int) if recent_groups is None else np.asarray(recent_groups)
    exempt, floor = exempt or {}, floor or {}
    names = list(dict.fromkeys(n for r in refs if r for n in r["features"]))
    features, problems, lines, missing_groups = [], [], [], {}
    for name in names:
        per = [r["features"].get(name) if r else None for r in refs]
        values = served[name].to_numpy(float) if name in served else np.full(len(served), np.nan)
        now = recent[name].to_numpy(float) if name in recent else np.full(len(recent), np.nan)
        missing = float(np.mean(~np.isfinite(values))) if len(values) else None
        missing_recent = float(np.mean(~np.isfinite(now))) if len(now) else None
        expected_missing = _shares_of(per, recent_groups if len(recent) else groups, "missing")
        base = min(x for x in (expected_missing, floor.get(name)) if x is not None) \
            if expected_missing is not None or name in floor else None
        observed, expected = _histogram(per, groups, values)
        n = independent(values, answers)
        score = _psi(observed, expected) if observed.sum() >= MIN_ROWS else None
        judged = score is not None and n >= MIN_VALUES  # the PSI is shown; a verdict needs enough values
        bins = int(((observed > 0) | (expected > 0)).sum())
        inverse_m = _inverse_n(per, groups, values)
        major, moderate = shift_level(n, inverse_m, bins), shift_level(n, inverse_m, bins, major=False)
        lo, hi = (limits or {}).get(name, (None, None)) if limits is not None else _range(per)
        finite_now = now[np.isfinite(now)]
        outside = None
        if lo is not None and hi is not None and len(finite_now):
            margin = RANGE_MARGIN * (hi - lo) + 1e-6 * max(abs(lo), abs(hi), 1.0)  # and float32 rounding
            outside = float(np.mean((finite_now < lo - margin) | (finite_now > hi + margin)))
        status, why = "ok", exempt.get(name)
        if why is not None:
            status = "exempt"
        elif missing_recent is not None and base is not None and len(now) >= MIN_RECENT_ROWS \
                and missing_recent > base + MISSING_EXTRA:
            status = "missing"
            missing_groups.setdefault((round(missing_recent, 2), round(base, 2)), []).append(name)
        elif outside is not None and len(finite_now) >= MIN_RECENT_ROWS and outside > OUT_OF_RANGE_SHARE:
            status = "out_of_range"
            problems.append(f"{name}: {outside:.0%} of the {recent_label} outside the training range "
                            f"{lo:.4g}..{hi:.4g}")
        elif judged and score >= major:
            status = "shift"
            lines.append(f"{name}: PSI {score:.2f} (major shift; {n} independent values)")
        elif judged and score >= moderate:
            status = "moderate"
        entry = {"feature": name, "psi": None if score is None else round(score, 4),
                 "missing": None if missing is None else round(missing, 4),
                 "missing_recent": None if missing_recent is None else round(missing_recent, 4),
                 "missing_reference": None if base is None else round(base, 4),
                 "out_of_range": None if outside is None else round(outside, 4), "values": n,
                 "shift_level": round(major, 4), "status": status}
        if why is not None:
            entry["reason"] = why
        if status in ("shift", "moderate", "missing", "out_of_range") and expected.sum() and observed.sum():
            entry["bins"] = {"reference": np.round(expected / expected.sum(), 4).tolist(),
                             "answered": np.round(observed / observed.sum(), 4).tolist()}
        features.append(entry)
    for (share, base), group in missing_groups.items():
        problems.insert(0, f"{', '.join(group)}: missing in {share:.0%} of the {recent_label} "
                           f"(reference {base:.0%})")
    pred_refs = [r["prediction"] if r else None for r in refs]
    observed, expected = _histogram(pred_refs, groups, served["prediction"].to_numpy(float)) \
        if "prediction" in served else (np.zeros(1), np.zeros(1))
    pred = _psi(observed, expected) if len(served) >= MIN_ROWS else None
    status = "input_quality" if problems else "insufficient" if len(served) < MIN_ROWS else \
        "shift" if lines else "ok"
    return {"rows": len(served), "status": status, "problems": problems, "report_lines": lines,
            "exempt": [{"feature": n, "reason": exempt[n]} for n in names if n in exempt],
            "prediction_psi": None if pred is None else round(pred, 4), "features": features}


def _inverse_n(per: list[dict | None], groups: np.ndarray, values: np.ndarray) -> float:
    """1/m of the reference mixture: the sum over groups of (share of the window's values)^2 / its values."""
    finite = np.isfinite(values)
    if not finite.any():
        return 0.0
    out = 0.0
    for g, count in zip(*np.unique(groups[finite], return_counts=True), strict=True):
        ref = per[g]
        if ref and ref.get("n"):
            out += (count / finite.sum()) ** 2 / ref["n"]
    return out


def _range(per: list[dict | None]) -> tuple[float | None, float | None]:
    lows = [p["min"] for p in per if p and p.get("min") is not None]
    highs = [p["max"] for p in per if p and p.get("max") is not None]
    return (min(lows), max(highs)) if lows and highs else (None, None)


# --- recording what was answered --------------------------------------------------------------------
class Recorder:
    """A sample of every answer's rows, held in memory and written by :meth:`flush` (off the request path)."""

    def __init__(self, origin: str, sample: int = SAMPLE_PER_ANSWER, seed: int = 0):
        self.origin, self.sample = origin, sample
        self._rng, self._rows, self._lock = np.random.default_rng(seed), [], threading.Lock()

    def add(self, domain: str, at, X: pd.DataFrame, prediction: np.ndarray) -> None:
        take = self._rng.choice(len(X), min(self.sample, len(X)), replace=False) if len(X) else []
        now = now_kst()
        when = pd.Timestamp(at).to_pydatetime() if at is not None else None
        rows = [{"domain": domain, "origin": self.origin, "at": when, "recorded_at": now,
                 "features": json.dumps({k: (None if not np.isfinite(v) else float(v))
                                         for k, v in X.iloc[i].items()}),
                 "prediction": None if not np.isfinite(prediction[i]) else float(prediction[i])} for i in take]
        with self._lock:
            self._rows.extend(rows)

    def flush(self, db: sa.Engine) -> int:
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            with writing(db) as conn:
                conn.execute(SERVED.insert(), rows)
                newest: dict[str, datetime] = {}
                for r in rows:
                    if r["at"] is not None and (r["domain"] not in newest or r["at"] > newest[r["domain"]]):
                        newest[r["domain"]] = r["at"]
                retain(conn, newest)
        return len(rows)


def retain(conn, newest: dict[str, datetime]) -> None:
    """Drop the served rows of each domain of ``newest`` older than KEEP_DAYS of data time before its newest
    answer (the newest just written: a lower bound), and every row recorded KEEP_DAYS ago on the clock
    (``/predict`` records have no data time)."""
    keep = timedelta(days=KEEP_DAYS)
    conn.execute(SERVED.delete().where(SERVED.c.recorded_at < now_kst() - keep))
    for domain, at in sorted(newest.items()):
        conn.execute(SERVED.delete().where(SERVED.c.domain == domain, SERVED.c.at < at - keep))


# --- references -------------------------------------------------------------------------------------
def references(db: sa.Engine) -> dict[str, dict]:
    with db.connect() as conn:
        return {r.domain: {"model": r.model, **json.loads(r.profile)} for r in conn.execute(sa.select(REFERENCES))}


def store_reference(db: sa.Engine, domain: str, model: str, prof: dict) -> None:
    with writing(db) as conn:
        conn.execute(REFERENCES.delete().where(REFERENCES.c.domain == domain))
        conn.execute(REFERENCES.insert().values(domain=domain, model=model, created_at=now_kst(),
                                                profile=json.dumps(prof)))


# --- reading the answers ------------------------------------------------------------------------------
def _index(db: sa.Engine, domain: str, hours: float = CHECK_HOURS) -> pd.DataFrame:
    """id, at, prediction of the domain's dated rows within the longest window and the trailing one."""
    with db.connect() as conn:
        newest = conn.execute(sa.select(sa.func.max(SERVED.c.at)).where(SERVED.c.domain == domain)).scalar()
        if newest is None:
            return pd.DataFrame({"id": [], "at": pd.to_datetime([]), "prediction": []})
        since = pd.Timestamp(newest) - max(MAX_WINDOW, timedelta(hours=hours)) - TRAILING
        rows = conn.execute(sa.select(SERVED.c.id, SERVED.c.at, SERVED.c.prediction).where(
            SERVED.c.domain == domain, SERVED.c.at >= since.to_pydatetime())).fetchall()
    return pd.DataFrame({"id": [r.id for r in rows], "at": pd.to_datetime([r.at for r in rows]),
                         "prediction": [np.nan if r.prediction is None else r.prediction for r in rows]})


def _undated(db: sa.Engine, domain: str) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(SERVED).where(
            SERVED.c.domain == domain, SERVED.c.at.is_(None))).scalar())


def _features(db: sa.Engine, ids) -> pd.DataFrame:
    """The recorded features of rows ``ids``, indexed by id."""
    ids = [int(i) for i in ids]
    records, index = [], []
    with db.connect() as conn:
        for lo in range(0, len(ids), 500):
            for r in conn.execute(sa.select(SERVED.c.id, SERVED.c.features).where(SERVED.c.id.in_(ids[lo:lo + 500]))):
                index.append(r.id)
                records.append(json.loads(r.features))
    return pd.DataFrame(records, index=index, dtype=float).reindex(ids)


def _thin(frame: pd.DataFrame, n: int = READ_ROWS, seed: int = 0) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n, random_state=seed).sort_values("id")


def _window(index: pd.DataFrame, hours: float) -> np.ndarray:
    """The rows of the window: the last ``hours`` of data time, widened to MIN_ROWS rows within MAX_WINDOW."""
    if index.empty:
        return np.zeros(0, bool)
    top = index["at"].max()
    inside = (index["at"] > top - pd.Timedelta(hours=hours)).to_numpy().copy()
    if inside.sum() < MIN_ROWS:
        counts = index.groupby("at").size().sort_index(ascending=False).cumsum()
        enough = counts[counts >= MIN_ROWS]
        first = enough.index[0] if len(enough) else counts.index[-1]
        first = max(first, top - MAX_WINDOW + pd.Timedelta(seconds=1))
        inside = inside | (index["at"] >= first).to_numpy()
    return inside


def served(db: sa.Engine, domain: str, hours: float = CHECK_HOURS) -> pd.DataFrame:
    """The features and predictions of ``domain``'s window (the last ``hours`` of data time, see the module
    docstring), for plots."""
    index = _index(db, domain, hours)
    rows = _thin(index.loc[_window(index, hours)])
    return _features(db, rows["id"]).reset_index(drop=True).assign(prediction=rows["prediction"].to_numpy())


# --- live feeds ---------------------------------------------------------------------------------------
def feeds(db: sa.Engine, now: datetime | None = None) -> dict[str, dict]:
    """Each live source the store is fed (a batch from the API, an inbox or a fetch, not only back-filled
    files): its newest observed time and, when an hour past its lateness brought nothing, since when it is
    silent (its time rule: ``live.store.STALE_AFTER``), against the clock."""
    from features.sources.timing import RULES
    from live.store import BATCHES, HOURLY_SOURCES, KEYS, OBSERVED, STALE_AFTER, TABLES, TIME_OF

    now = pd.Timestamp(now or now_kst())
    out = {}
    with db.connect() as conn:
        fed = set(conn.execute(sa.select(BATCHES.c.source).where(BATCHES.c.origin != "backfill",
                                                                 BATCHES.c.accepted > 0).distinct()).scalars())
        for source in sorted(fed & set(HOURLY_SOURCES)):  # events have no cadence to fall silent from
            table, rule = TABLES[source], RULES[source]
            values = OBSERVED.get(source) or [c.name for c in table.columns
                                              if c.name not in (*KEYS[source], "batch", "station_code")]
            when = table.c[TIME_OF[source]]
            newest = conn.execute(sa.select(sa.func.max(when)).where(
                sa.or_(*(table.c[c].isnot(None) for c in values)),
                when <= (now + rule.skew).to_pydatetime())).scalar()
            if newest is None:
                continue
            newest = pd.Timestamp(newest)
            silent = now - newest > pd.Timedelta(STALE_AFTER[source])
            missed = int((now - rule.lateness - newest) // rule.cadence) if silent else 0
            out[source] = {"newest": newest.isoformat(), "lateness_min": rule.lateness.total_seconds() / 60,
                           "silent_since": (newest + rule.cadence).isoformat() if silent else None,
                           "hours_missed": missed}
    return out


def _silent(domain: str, source: str, feed: dict, index: pd.DataFrame, window: np.ndarray) -> str:
    """The problem of a silent feed: since when, and what the domain's answers did since."""
    since = pd.Timestamp(feed["silent_since"])
    head = (f"{source}: silent since {since:%Y-%m-%d %H:%M} ({feed['hours_missed']} h without a report after "
            f"its {feed['lateness_min']:g} min lateness)")
    after = index.loc[index["at"] >= since, "prediction"]
    before = index.loc[window & (index["at"] < since).to_numpy(), "prediction"]
    if after.empty:
        top = index["at"].max() if len(index) else None
        stand = f" (their data time stands at {top:%Y-%m-%d %H:%M})" if top is not None else ""
        return f"{head}; no {domain} answers since{stand}"
    unknown = float(after.isna().mean())
    usual = float(before.isna().mean()) if len(before) else 0.0
    if unknown > usual + 0.05:
        return f"{head}; {unknown:.0%} of the {domain} answers since then are unknown ({usual:.0%} before)"
    return (f"{head}; the {domain} answers since then fall back on other inputs ({unknown:.0%} unknown, "
            f"{usual:.0%} before)")


# --- performance without labels ---------------------------------------------------------------------
def performance(spec, prediction: np.ndarray) -> dict:
    """What the served predictions say of the model's performance without labels (see the module docstring)."""
    p = np.asarray(prediction, dtype=float)
    p = p[np.isfinite(p)]
    if spec is None:
        return {"method": None, "note": "domain not registered"}
    if spec.task == "binary":
        return _cbpe(np.clip(p, 0.0, 1.0), _alert_threshold(spec))
    if spec.task == "count":
        return _poisson_expectation(p)
    return {"method": None, "note": f"none estimated without labels: a {spec.task} model gives a point value "
            "with no confidence to estimate its error from"}


def _alert_threshold(spec) -> float:
    """The value at which the domain's alert level starts (``URBAN_SAFETY_ALERT_LEVELS``, default 경계)."""
    from live.alerts import DEFAULT_LEVEL, alert_levels, threshold

    try:
        level = threshold(spec.name, alert_levels())
    except ValueError:
        level = DEFAULT_LEVEL
    return float(spec.serving.levels.breaks[level]) if spec.serving is not None else 0.5


def _cbpe(p: np.ndarray, cut: float) -> dict:
    """Expected precision, recall and F1 at ``cut`` and expected ROC and PR AUC, if ``p`` is calibrated."""
    out = {"method": "CBPE (confidence-based performance estimation)", "assumes": "calibrated probabilities",
           "rows": len(p), "threshold": cut}
    if len(p) < MIN_ROWS:
        return {**out, "note": f"fewer than {MIN_ROWS} answered rows: no estimate"}
    flagged = p >= cut
    tp, fp = float(p[flagged].sum()), float((1 - p[flagged]).sum())
    fn = float(p[~flagged].sum())
    positives = float(p.sum())
    order = np.argsort(-p, kind="stable")
    tps, fps = np.cumsum(p[order]), np.cumsum(1 - p[order])
    negatives = len(p) - positives
    roc = float(np.trapezoid(np.r_[0, tps / positives], np.r_[0, fps / negatives])) \
        if positives > 0 and negatives > 0 else None
    ap = float(np.sum(p[order] / positives * tps / np.arange(1, len(p) + 1))) if positives > 0 else None
    expected = {"positives": round(positives, 3), "flagged": int(flagged.sum()),
                "precision": round(tp / (tp + fp), 4) if tp + fp > 0 else None,
                "recall": round(tp / positives, 4) if positives > 0 else None,
                "f1": round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn > 0 else None,
                "roc_auc": None if roc is None else round(roc, 4), "pr_auc": None if ap is None else round(ap, 4)}
    return {**out, "expected": expected}


def _poisson_expectation(mu: np.ndarray) -> dict:
    """The mean Poisson deviance if the counts are Poisson with the predicted means: 2 E[Y log(Y/mu)] (E[Y - mu]
    is 0), summed over the counts that carry the mass."""
    from scipy.stats import poisson

    out = {"method": "expected Poisson deviance", "rows": len(mu),
           "assumes": "counts Poisson with the predicted means: a yardstick for the realised deviance once the "
                      "accidents are known, not an estimate of the model's error"}
    if len(mu) < MIN_ROWS:
        return {**out, "note": f"fewer than {MIN_ROWS} answered rows: no estimate"}
    mu = np.clip(mu, 1e-9, None)
    top = int(math.ceil(mu.max() + 10 * math.sqrt(mu.max()) + 10))
    y = np.arange(2, top + 1, dtype=float)[:, None]
    ylogy = (poisson.pmf(y, mu[None, :]) * y * np.log(y)).sum(axis=0)
    return {**out, "expected": {"mean_deviance": round(float(np.mean(2 * (ylogy - mu * np.log(mu)))), 6),
                                "mean_prediction": round(float(mu.mean()), 6)}}


# --- the check ---------------------------------------------------------------------------------------
def check(db: sa.Engine, hours: float = CHECK_HOURS, domains: list[str] | None = None,
          now: datetime | None = None) -> dict[str, dict]:
    """Every domain with a reference: its window of answers against its reference, the input-quality
    problems, the report lines and the performance estimate (see the module docstring)."""
    from features.registry import domains as registered

    refs, specs = references(db), registered()
    live = feeds(db, now) if refs else {}
    return {name: {"model": ref["model"], **assess(db, name, ref, specs.get(name), hours, live)}
            for name, ref in sorted(refs.items()) if domains is None or name in domains}


def assess(db: sa.Engine, name: str, ref: dict, spec, hours: float, live: dict[str, dict]) -> dict:
    """One domain's report (see :func:`check`)."""
    index = _index(db, name, hours)
    inside = _window(index, hours)
    window = _thin(index.loc[inside])
    top = index["at"].max() if len(index) else None
    recent = window.loc[window["at"] > top - pd.Timedelta(hours=RECENT_HOURS)] if top is not None else window
    exempt = dict(getattr(spec, "not_drift", {}) or {})
    basis = _reference(db, ref, index, inside, window)
    frame = _features(db, window["id"]).reset_index(drop=True).assign(prediction=window["prediction"].to_numpy())
    now_rows = frame.loc[(window["at"] > top - pd.Timedelta(hours=RECENT_HOURS)).to_numpy()] \
        if top is not None else frame
    profiles, groups, recent_groups = _groups(basis, ref, window, recent)
    floor = _training_missing(ref, recent)
    limits = {f: (c.get("min"), c.get("max")) for f, c in ref["features"].items()}
    recent_label = f"answers for the {RECENT_HOURS} data hours" + ("" if top is None else f" to {top:%Y-%m-%d %H:%M}")
    report = compare(profiles, frame, groups=groups, recent=now_rows, recent_groups=recent_groups,
                     exempt=exempt, floor=floor, limits=limits, recent_label=recent_label,
                     answers=window["at"].to_numpy())
    silent = [_silent(name, s, live[s], index, inside) for s in (spec.sources if spec is not None else ())
              if s in live and live[s]["silent_since"]]
    problems = silent + report["problems"]
    status = "input_quality" if problems else report["status"]
    judged = len(now_rows) >= MIN_RECENT_ROWS or any(s in live for s in (spec.sources if spec else ()))
    return {**report, "rows": int(inside.sum()), "read_rows": len(frame), "undated_rows": _undated(db, name),
            "status": status, "problems": problems, "inputs_judged": judged,
            "window": {"from": None if window.empty else window["at"].min().isoformat(),
                       "to": None if top is None else top.isoformat()},
            "recent": {"hours": RECENT_HOURS, "rows": len(now_rows)},
            "reference": basis["describe"], "reference_detail": {k: v for k, v in basis.items() if k != "profile"},
            "feeds": {s: live[s] for s in (spec.sources if spec else ()) if s in live},
            "performance": performance(spec, window["prediction"].to_numpy(float))}


def _reference(db, ref: dict, index: pd.DataFrame, inside: np.ndarray, window: pd.DataFrame) -> dict:
    """The served answers at the window's hours of day over TRAILING before it, when they hold at least
    MIN_REFERENCE_ROWS rows (each hour weighted as in the window); else the training table's months."""
    if window.empty:
        return {"kind": "training", "describe": "training: no dated answers yet", "months": []}
    start = index.loc[inside, "at"].min()
    hours = window["at"].dt.hour
    candidates = index.loc[(index["at"] < start).to_numpy() & (index["at"] >= start - TRAILING).to_numpy()]
    candidates = candidates.loc[candidates["at"].dt.hour.isin(set(hours)).to_numpy()]
    if len(candidates) >= MIN_REFERENCE_ROWS:
        rows = _thin(candidates)
        share = hours.value_counts(normalize=True)
        have = rows["at"].dt.hour.value_counts(normalize=True)
        weights = (rows["at"].dt.hour.map(share) / rows["at"].dt.hour.map(have)).to_numpy(float)
        X = _features(db, rows["id"])
        X = X.reindex(columns=list(ref["features"]))
        prof = profile(X.reset_index(drop=True), rows["prediction"].to_numpy(float), weights, rows["at"].to_numpy())
        first, last = candidates["at"].min(), candidates["at"].max()
        describe = (f"served: {len(candidates):,} answered rows at the same hours of day, "
                    f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}")
        return {"kind": "served", "describe": describe, "rows": len(candidates), "from": first.isoformat(),
                "to": last.isoformat(), "hours_of_day": sorted(int(h) for h in set(hours)), "profile": prof}
    months = sorted(int(m) for m in set(window["at"].dt.month))
    held = [m for m in months if _month(ref, m) is not None]
    thin = sorted(set(months) - set(held))
    describe = f"training, months {held}" if held else "training, all months"
    if thin:
        describe += f" (all months for {thin}: fewer than {MIN_ROWS} training rows)" if ref.get("months") else \
            " (a reference made before per-month profiles)"
    return {"kind": "training", "describe": describe, "months": held, "served_rows_before": len(candidates)}


def _month(ref: dict, month: int) -> dict | None:
    prof = (ref.get("months") or {}).get(str(month))
    return prof if prof is not None and prof.get("rows", 0) >= MIN_ROWS else None


def _groups(basis: dict, ref: dict, window: pd.DataFrame, recent: pd.DataFrame):
    """(profiles, each window row's profile, each recent row's profile)."""
    if basis["kind"] == "served":
        return [basis["profile"]], np.zeros(len(window), int), np.zeros(len(recent), int)
    months = list(range(1, 13))
    profiles = [_month(ref, m) or ref for m in months]
    return profiles, window["at"].dt.month.to_numpy() - 1, recent["at"].dt.month.to_numpy() - 1


def _training_missing(ref: dict, recent: pd.DataFrame) -> dict[str, float]:
    """Per feature, the training's missing share for the recent rows' months (the cap on the reference's)."""
    months = recent["at"].dt.month.value_counts(normalize=True) if len(recent) else pd.Series({0: 1.0})
    profiles = [(_month(ref, int(m)) or ref, share) for m, share in months.items()]
    return {f: float(sum(share * p["features"].get(f, c)["missing"] for p, share in profiles))
            for f, c in ref["features"].items()}


def raise_alerts(db: sa.Engine, report: dict[str, dict], now: datetime | None = None) -> list:
    """Open, update or clear the input-quality alerts of a :func:`check` report: one per silent feed (its
    ``domain`` is the source's name: one cause, one alert, whatever domains read it; the problems of the
    domains reading it are told in it), else one per domain with problems; each open while its problems
    last, cleared by the first check that finds none."""
    from live.alerts import data_quality

    now = now or now_kst()
    feeds_seen: dict[str, list[str]] = {}
    domain_problems: dict[str, list[str]] = {}
    for name, r in report.items():
        silent = [s for s, f in (r.get("feeds") or {}).items() if f.get("silent_since")]
        for source in r.get("feeds") or {}:
            feeds_seen.setdefault(source, [])
        if silent:  # the domain's other problems follow from the silence (rain missing): told there
            feeds_seen[silent[0]] += [p if ": silent since " in p else f"{name} {p}" for p in r["problems"]]
            domain_problems[name] = []
        elif r["problems"] or r.get("inputs_judged", r["status"] != "insufficient"):
            domain_problems[name] = r["problems"]
    events = [e for source, problems in sorted(feeds_seen.items())
              for e in data_quality(db, source, _one_head(problems), now)]
    return events + [e for name, problems in domain_problems.items() for e in data_quality(db, name, problems, now)]


def _one_head(problems: list[str]) -> list[str]:
    """A silent feed's problems as one alert tells them: its "<source>: silent since ... (...)" head once,
    then what each domain's answers did."""
    out, heads = [], set()
    for problem in dict.fromkeys(problems):
        head, sep, tail = problem.partition("); ")
        if sep and ": silent since " in head and head in heads:
            out.append(tail)
            continue
        heads.add(head)
        out.append(problem)
    return out


def html_report(report: dict[str, dict], refs: dict[str, dict] | None = None,
                samples: dict[str, pd.DataFrame] | None = None) -> str:
    """One page: per domain the reference, problems, report lines, exempt inputs, performance estimate, a
    table of features and the bin shares of those that moved (``refs`` and ``samples`` are not needed: the
    report carries the bins)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    esc = html.escape
    parts = ["<!doctype html><meta charset='utf-8'><title>Input monitoring</title>",
             "<style>body{font:14px sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}"
             ".input_quality,.missing,.out_of_range{background:#fdd}.shift,.moderate{background:#ffe}"
             ".exempt{color:#888}</style>",
             f"<h1>Answered inputs against what was answered before</h1><p>{now_kst():%Y-%m-%d %H:%M}</p>"]
    for name, r in report.items():
        parts.append(f"<h2>{esc(name)}: {r['status']} ({r['rows']} answered rows, model {esc(str(r['model']))})</h2>")
        parts.append(f"<p>Reference: {esc(str(r.get('reference', 'training')))}</p>")
        parts += [f"<p class='input_quality'>{esc(p)}</p>" for p in r["problems"]]
        parts += [f"<p class='shift'>{esc(p)}</p>" for p in r.get("report_lines", [])]
        if r.get("exempt"):
            parts.append("<p class='exempt'>Not drift: " + "; ".join(
                f"{esc(e['feature'])} ({esc(e['reason'])})" for e in r["exempt"]) + "</p>")
        if r.get("performance"):
            parts.append(f"<p>Performance without labels: <code>{esc(json.dumps(r['performance']))}</code></p>")
        parts.append("<table><tr><th>feature</th><th>PSI</th><th>missing</th><th>missing, recent</th>"
                     "<th>missing, reference</th><th>outside training range</th></tr>")
        parts += [f"<tr class='{f['status']}'><td>{esc(f['feature'])}</td><td>{f['psi']}</td><td>{f['missing']}</td>"
                  f"<td>{f.get('missing_recent')}</td><td>{f.get('missing_reference')}</td>"
                  f"<td>{f.get('out_of_range')}</td></tr>" for f in r["features"]]
        parts.append("</table>")
        for f in [f for f in r["features"] if "bins" in f][:12]:
            fig, ax = plt.subplots(figsize=(5, 2.2))
            x = np.arange(len(f["bins"]["reference"]))
            ax.bar(x - 0.2, f["bins"]["reference"], 0.4, label="reference")
            ax.bar(x + 0.2, f["bins"]["answered"], 0.4, label="answered")
            ax.set_title(f"{f['feature']} ({f['status']})", fontsize=9)
            ax.set_xlabel("reference decile bin")
            ax.legend(fontsize=7)
            buf = io.BytesIO()
            fig.tight_layout()
            fig.savefig(buf, format="png", dpi=80)
            plt.close(fig)
            parts.append(f"<img alt='{esc(f['feature'])}' "
                         f"src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>")
    return "\n".join(parts)
