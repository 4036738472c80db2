"""Drift and data-quality monitoring: the inputs and predictions the service answered, against the training table.

- **Reference** (``monitor_references``, one per domain and champion, made by ``urban-safety serve``): per
  feature and for the prediction, the training table's deciles (bin edges), each bin's share and the share
  missing, from a sample of up to 50,000 rows scored by the champion.
- **Served sample** (``served_rows``): the engine records up to 64 random rows of every answer it builds
  (features and prediction, with where it came from: the service or the live cycle), kept 7 days.
- **Comparison**: the population stability index (PSI) of each feature over the reference's bins, and the
  share of answers missing it. PSI ≥ 0.25 is a major shift, 0.1-0.25 a moderate one (the usual rule of
  thumb: N. Siddiqi, *Credit Risk Scorecards*, Wiley 2006, ch. 8); a feature missing in 20 points more of
  the answers than in training is a data-quality problem. Either raises an operator alert (``live.alerts``)
  for the domain; it clears when the next check is clean.

Why not Evidently: the numbers needed are a few lines on numpy and the report a page of matplotlib figures
(already a dependency); Evidently would add some hundred megabytes of dependencies whose report API has
changed in every minor release. Known limit: flood's training table is a selection of event hours (see
``features/domains/flood/features.py``), so its rain and nowcast features read as shifted in calm weather.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import threading
from datetime import timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from live.db import METADATA, now_kst, writing

BINS = 10
PSI_MODERATE, PSI_MAJOR = 0.10, 0.25
MISSING_EXTRA = 0.20  # served share missing above the training's share: a data-quality problem
MIN_ROWS = 200  # fewer served values than this: no verdict on a feature
SAMPLE_PER_ANSWER = 64
REFERENCE_ROWS = 50_000
KEEP_DAYS = float(os.environ.get("URBAN_SAFETY_MONITOR_KEEP_DAYS", "7"))
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

SERVED = sa.Table(
    "served_rows", METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("domain", sa.Text, nullable=False, index=True),
    sa.Column("origin", sa.Text, nullable=False),  # service | cycle
    sa.Column("at", sa.DateTime),  # the data time answered for
    sa.Column("recorded_at", sa.DateTime, nullable=False, index=True),
    sa.Column("features", sa.Text, nullable=False),  # JSON {feature: value or null}
    sa.Column("prediction", sa.Float),
)
REFERENCES = sa.Table(
    "monitor_references", METADATA,
    sa.Column("domain", sa.Text, primary_key=True),
    sa.Column("model", sa.Text, nullable=False),  # the champion it describes (BentoML tag)
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("profile", sa.Text, nullable=False),  # JSON, see profile()
)


# --- profiles and their comparison ----------------------------------------------------------------
def _column(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    missing = 1.0 - len(finite) / len(values) if len(values) else 1.0
    if not len(finite):
        return {"edges": [], "shares": [], "missing": missing, "mean": None}
    inner = np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1)))[1:-1]
    counts = np.bincount(np.searchsorted(inner, finite, side="right"), minlength=len(inner) + 1)
    return {"edges": inner.tolist(), "shares": (counts / counts.sum()).tolist(), "missing": missing,
            "mean": float(finite.mean())}


def profile(X: pd.DataFrame, prediction: np.ndarray) -> dict:
    """Per feature (and the prediction): decile edges, bin shares, share missing, mean."""
    return {"rows": len(X), "features": {c: _column(X[c].to_numpy(float)) for c in X.columns},
            "prediction": _column(prediction)}


def psi(reference: dict, values: np.ndarray) -> float | None:
    """Population stability index of ``values`` over the reference's bins (None without values)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not len(finite) or not reference["shares"]:
        return None
    counts = np.bincount(np.searchsorted(reference["edges"], finite, side="right"),
                         minlength=len(reference["shares"]))
    served, ref = np.clip(counts / counts.sum(), 1e-4, None), np.clip(np.asarray(reference["shares"]), 1e-4, None)
    return float(np.sum((served - ref) * np.log(served / ref)))


def compare(reference: dict, served: pd.DataFrame) -> dict:
    """Each feature's PSI and missing share against the reference; the problems found; a status."""
    features, problems = [], []
    for name, ref in reference["features"].items():
        values = served[name].to_numpy(float) if name in served else np.full(len(served), np.nan)
        missing = float(np.mean(~np.isfinite(values))) if len(values) else None
        enough = int(np.isfinite(values).sum()) >= MIN_ROWS
        score = psi(ref, values) if enough else None
        status = "ok"
        if missing is not None and len(values) >= MIN_ROWS and missing > ref["missing"] + MISSING_EXTRA:
            status = "missing"
            problems.append(f"{name}: missing in {missing:.0%} of the answers (training {ref['missing']:.0%})")
        elif score is not None and score >= PSI_MAJOR:
            status = "shift"
            problems.append(f"{name}: PSI {score:.2f} (major shift from training)")
        elif score is not None and score >= PSI_MODERATE:
            status = "moderate"
        features.append({"feature": name, "psi": None if score is None else round(score, 4),
                         "missing": None if missing is None else round(missing, 4),
                         "missing_training": round(ref["missing"], 4), "status": status})
    pred = psi(reference["prediction"], served["prediction"].to_numpy(float)) if len(served) >= MIN_ROWS else None
    return {"rows": len(served), "status": "insufficient" if len(served) < MIN_ROWS else
            ("drift" if problems else "ok"), "problems": problems,
            "prediction_psi": None if pred is None else round(pred, 4), "features": features}


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
                conn.execute(SERVED.delete().where(SERVED.c.recorded_at < now_kst() - timedelta(days=KEEP_DAYS)))
        return len(rows)


# --- the check ---------------------------------------------------------------------------------------
def references(db: sa.Engine) -> dict[str, dict]:
    with db.connect() as conn:
        return {r.domain: {"model": r.model, **json.loads(r.profile)} for r in conn.execute(sa.select(REFERENCES))}


def store_reference(db: sa.Engine, domain: str, model: str, prof: dict) -> None:
    with writing(db) as conn:
        conn.execute(REFERENCES.delete().where(REFERENCES.c.domain == domain))
        conn.execute(REFERENCES.insert().values(domain=domain, model=model, created_at=now_kst(),
                                                profile=json.dumps(prof)))


def served(db: sa.Engine, domain: str, hours: float) -> pd.DataFrame:
    """The rows recorded for ``domain`` in the last ``hours`` (wall clock): features and prediction."""
    since = now_kst() - timedelta(hours=hours)
    with db.connect() as conn:
        rows = conn.execute(sa.select(SERVED.c.features, SERVED.c.prediction).where(
            SERVED.c.domain == domain, SERVED.c.recorded_at >= since)).fetchall()
    frame = pd.DataFrame([json.loads(r.features) for r in rows], dtype=float)
    frame["prediction"] = [np.nan if r.prediction is None else r.prediction for r in rows]
    return frame


def check(db: sa.Engine, hours: float = 24.0, domains: list[str] | None = None) -> dict[str, dict]:
    """Every domain with a reference: its comparison over the last ``hours`` of answers."""
    refs = references(db)
    return {name: {"model": ref["model"], **compare(ref, served(db, name, hours))}
            for name, ref in sorted(refs.items()) if domains is None or name in domains}


def raise_alerts(db: sa.Engine, report: dict[str, dict]) -> list:
    """Open, update or clear each domain's input-quality alert from a :func:`check` report."""
    from live.alerts import data_quality

    return [e for name, r in report.items() if r["status"] != "insufficient"
            for e in data_quality(db, name, r["problems"], now_kst())]


def html_report(report: dict[str, dict], refs: dict[str, dict], samples: dict[str, pd.DataFrame]) -> str:
    """One page: per domain a table of features (PSI, missing) and the histograms of the shifted ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = ["<!doctype html><meta charset='utf-8'><title>Input monitoring</title>",
             "<style>body{font:14px sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}"
             ".shift,.missing{background:#fdd}.moderate{background:#ffe}</style>",
             f"<h1>Inputs and predictions against training</h1><p>{now_kst():%Y-%m-%d %H:%M}</p>"]
    for name, r in report.items():
        parts.append(f"<h2>{html.escape(name)}: {r['status']} ({r['rows']} answered rows, model {r['model']})</h2>")
        parts += [f"<p class='shift'>{html.escape(p)}</p>" for p in r["problems"]]
        parts.append("<table><tr><th>feature</th><th>PSI</th><th>missing</th><th>missing in training</th></tr>")
        parts += [f"<tr class='{f['status']}'><td>{f['feature']}</td><td>{f['psi']}</td><td>{f['missing']}</td>"
                  f"<td>{f['missing_training']}</td></tr>" for f in r["features"]]
        parts.append("</table>")
        shown = [f["feature"] for f in r["features"] if f["status"] != "ok"][:12]
        for feature in shown:
            ref, values = refs[name]["features"][feature], samples[name].get(feature)
            fig, ax = plt.subplots(figsize=(5, 2.2))
            x = np.arange(len(ref["shares"]))
            ax.bar(x - 0.2, ref["shares"], 0.4, label="training")
            if values is not None and np.isfinite(values).any():
                finite = values[np.isfinite(values)]
                counts = np.bincount(np.searchsorted(ref["edges"], finite, side="right"), minlength=len(x))
                ax.bar(x + 0.2, counts / counts.sum(), 0.4, label="answered")
            ax.set_title(feature, fontsize=9)
            ax.set_xlabel("training decile bin")
            ax.legend(fontsize=7)
            buf = io.BytesIO()
            fig.tight_layout()
            fig.savefig(buf, format="png", dpi=80)
            plt.close(fig)
            parts.append(f"<img alt='{feature}' src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>")
    return "\n".join(parts)
