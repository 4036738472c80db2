"""The model registry: register every trained model, move the ``champion`` alias only to a better one.

"Better" means a better primary metric on the *same* holdout: the current champion is re-scored on the
new job's holdout rows rather than trusted with the figure it logged on its own.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from features.registry import DomainSpec
from training.models import predict
from training.tracking import registered_name

ALIAS = "champion"


@dataclass(frozen=True)
class Decision:
    version: str
    promoted: bool
    reason: str
    champion_score: float | None  # the previous champion on this holdout


def load_native(model_uri: str):
    """``(family, booster)`` of a logged model, loaded in its native flavour (probabilities, contributions)."""
    flavors = mlflow.models.get_model_info(model_uri).flavors
    if "lightgbm" in flavors:
        return "lightgbm", mlflow.lightgbm.load_model(model_uri)
    if "xgboost" in flavors:
        return "xgboost", mlflow.xgboost.load_model(model_uri)
    raise MlflowException(f"{model_uri} is neither a LightGBM nor an XGBoost model")


def current_champion(client: MlflowClient, domain: str, city_key: str | None = None):
    """The domain's champion model version in the city's registry (None when it has none)."""
    try:
        return client.get_model_version_by_alias(registered_name(domain, city_key), ALIAS)
    except MlflowException:
        return None


def register_and_decide(client: MlflowClient, spec: DomainSpec, model_uri: str, run_id: str,
                        holdout: pd.DataFrame, new_score: float, city_key: str | None = None) -> Decision:
    """Register the run's model; make it champion only if it beats the current one on ``holdout``."""
    name = registered_name(spec.name, city_key)
    metric = spec.metric()
    version = mlflow.register_model(model_uri, name, tags={"run_id": run_id}).version
    champion = current_champion(client, spec.name, city_key)
    champ_score = None
    if champion is None:
        promoted, reason = True, "first model of this domain"
    elif champion.tags.get("feature_set_version") != spec.feature_set_version:
        promoted = True
        reason = (f"champion v{champion.version} uses feature set {champion.tags.get('feature_set_version')}, "
                  f"not {spec.feature_set_version}: it cannot score this holdout")
    else:
        family, booster = load_native(f"models:/{name}/{champion.version}")
        pred = predict(family, booster, holdout[list(spec.features)])
        w = holdout[spec.weight].to_numpy(dtype=float) if spec.weight else None
        champ_score = metric(holdout[spec.target].to_numpy(dtype=float), pred, w, holdout)
        promoted = metric.better(new_score, champ_score) or not np.isfinite(champ_score)
        verb = "beats" if promoted else "does not beat"
        reason = (f"{metric.name} {new_score:.5f} {verb} champion v{champion.version}'s "
                  f"{champ_score:.5f} on the same holdout")
    tags = {"feature_set_version": spec.feature_set_version, "decision": "promoted" if promoted else "kept",
            "decision_reason": reason, "promoted_by": "auto" if promoted else ""}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if promoted:
        client.set_registered_model_alias(name, ALIAS, version)
    return Decision(version=str(version), promoted=promoted, reason=reason, champion_score=champ_score)


def promote(client: MlflowClient, domain: str, version: str, reason: str) -> str:
    """A person's override: make ``version`` the champion, recorded with who did it and why."""
    name = registered_name(domain)
    client.get_model_version(name, version)  # raises a clear MlflowException when it does not exist
    previous = current_champion(client, domain)
    client.set_registered_model_alias(name, ALIAS, version)
    who = getpass.getuser()
    note = f"manual override by {who}: {reason}" + (f" (replaced v{previous.version})" if previous else "")
    client.set_model_version_tag(name, version, "promoted_by", f"manual:{who}")
    client.set_model_version_tag(name, version, "decision", "promoted")
    client.set_model_version_tag(name, version, "decision_reason", note)
    return note
