"""Holdout evaluation: the baseline, the model and the oracle scored on the same rows, and plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from features.registry import DomainSpec  # noqa: E402


@dataclass(frozen=True)
class Scores:
    baseline: dict[str, float]
    model: dict[str, float]
    oracle: dict[str, float]  # empty where no truth exists (real data): the oracle is n/a
    primary: str
    # The same per value of the domain's breakdown column, by label (e.g. "lead6h"); empty without one.
    groups: dict[str, Scores] = field(default_factory=dict)

    @property
    def gap_closed(self) -> float:
        """Share of the baseline-to-oracle gap the model closes on the primary metric (1 = oracle); NaN
        (n/a) without an oracle."""
        if self.primary not in self.oracle:
            return float("nan")
        b, m, o = self.baseline[self.primary], self.model[self.primary], self.oracle[self.primary]
        return float((m - b) / (o - b)) if o != b and np.isfinite(o) else float("nan")

    def flat(self) -> dict[str, float]:
        """All scores as MLflow metric names: ``holdout_<metric>``, ``baseline_<metric>``, ``oracle_<metric>``,
        ``gap_closed``, and per breakdown group the same with ``_<group>`` appended."""
        out = {f"holdout_{k}": v for k, v in self.model.items()}
        out |= {f"baseline_{k}": v for k, v in self.baseline.items()}
        out |= {f"oracle_{k}": v for k, v in self.oracle.items()}
        out["gap_closed"] = self.gap_closed
        for label, group in self.groups.items():
            out |= {f"{k}_{label}": v for k, v in group.flat().items()}
        return {k: float(v) for k, v in out.items() if np.isfinite(v)}


def score(spec: DomainSpec, rows: pd.DataFrame, pred: np.ndarray) -> dict[str, float]:
    """Every metric the domain declares, for predictions on ``rows``."""
    y = rows[spec.target].to_numpy(dtype=float)
    w = rows[spec.weight].to_numpy(dtype=float) if spec.weight else None
    return {m.name: m(y, pred, w, rows) for m in spec.metrics}


def evaluate(spec: DomainSpec, holdout: pd.DataFrame, pred: np.ndarray, truth_dir: Path,
             history: pd.DataFrame) -> Scores:
    """Score the model against the domain's baseline (fitted on ``history``, the rows before the
    holdout) and the generator's oracle, all on ``holdout``. The oracle is scored only where a truth
    exists for every holdout row (the embedded data set); real data has none. A domain with a
    ``breakdown`` column is also scored per value of it (e.g. per lead time)."""
    base, truth = spec.baseline(holdout, history), oracle_values(spec, holdout, truth_dir)

    def scores(rows: pd.DataFrame, keep: np.ndarray, groups: dict) -> Scores:
        return Scores(baseline=score(spec, rows, base[keep]), model=score(spec, rows, pred[keep]),
                      oracle=score(spec, rows, truth[keep]) if truth is not None else {},
                      primary=spec.primary_metric, groups=groups)

    groups = {}
    if spec.breakdown:
        column, label = spec.breakdown
        values = holdout[column].to_numpy()
        for v in pd.unique(values[pd.notna(values)]):
            keep = values == v
            groups[label.format(v)] = scores(holdout.loc[keep].reset_index(drop=True), keep, {})
    return scores(holdout, np.ones(len(holdout), dtype=bool), dict(sorted(groups.items())))


def oracle_values(spec: DomainSpec, holdout: pd.DataFrame, truth_dir: Path) -> np.ndarray | None:
    """The true expected values behind the holdout's labels, or None where there is no truth for them."""
    if spec.oracle is None or not Path(truth_dir).is_dir():
        return None
    try:
        values = np.asarray(spec.oracle(holdout, truth_dir), dtype=float)
    except (FileNotFoundError, KeyError):  # no truth file for this domain, or one of another layout
        return None
    return values if len(values) == len(holdout) and np.isfinite(values).all() else None


def diagnostic_plot(spec: DomainSpec, holdout: pd.DataFrame, pred: np.ndarray, path: Path) -> Path:
    """Reliability diagram for probabilities, predicted-vs-observed by decile otherwise."""
    y = holdout[spec.target].to_numpy(dtype=float)
    w = holdout[spec.weight].to_numpy(dtype=float) if spec.weight else np.ones_like(y)
    order = np.argsort(pred)
    bins = np.array_split(order, 10)
    mean_pred = [np.average(pred[b], weights=w[b]) for b in bins if len(b)]
    mean_obs = [np.average(y[b], weights=w[b]) for b in bins if len(b)]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(mean_pred, mean_obs, "o-", label="model (deciles of prediction)")
    hi = max(max(mean_pred), max(mean_obs))
    ax.plot([0, hi], [0, hi], "k--", lw=1, label="perfect")
    kind = "reliability" if spec.task == "binary" else "predicted vs observed"
    ax.set(xlabel="mean prediction", ylabel="mean observed", title=f"{spec.name}: {kind} (holdout)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def importance_plot(names: list[str], gains: np.ndarray, title: str, path: Path) -> Path:
    """Horizontal bar chart of the 20 most important features by gain."""
    order = np.argsort(gains)[-20:]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.barh([names[i] for i in order], gains[order])
    ax.set(xlabel="total gain", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
