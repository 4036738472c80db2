"""Move champions from the MLflow registry into BentoML's model store, with the data snapshot they need.

``urban-safety serve`` calls :func:`import_champions` and :func:`snapshot_sources`; the service (and a
Bento built with ``bentoml build``) then reads only BentoML's store: no MLflow server is needed to serve.
Each domain is a BentoML model ``urban-safety-<domain>`` holding the native booster file; the data the
feature builders read at request time is the model ``urban-safety-context`` (Parquet per source).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bentoml
import lightgbm as lgb
import pandas as pd
import xgboost as xgb
from bentoml.exceptions import NotFound

from features.city import City
from features.registry import domains
from features.sources import Sources, files_stamp, source_files
from features.store import file_sha256
from live.store import LIVE_SOURCES, ObservationStore, backfill
from serving.engine import LoadedModel
from training.champion import current_champion, load_native
from training.tracking import city_suffix, configure, registered_name
from urban_safety.settings import Settings

log = logging.getLogger("urban_safety.serving")
BOOSTER_FILE = {"lightgbm": "booster.txt", "xgboost": "booster.ubj"}


def bento_name(domain: str, city_key: str | None = None) -> str:
    """The BentoML model of a domain's booster: its registered model's name (city-qualified but for the
    default city)."""
    return registered_name(domain, city_key)


def context_name(city_key: str | None = None) -> str:
    """The BentoML model holding the data snapshot: ``urban-safety-context`` (``-<city key>`` but for the
    default city)."""
    return f"urban-safety-context{city_suffix(city_key)}"


@dataclass(frozen=True)
class Imported:
    domain: str
    tag: str | None
    registry_version: str | None
    status: str  # imported | unchanged | missing


def _latest(name: str):
    try:
        return bentoml.models.get(f"{name}:latest")
    except NotFound:
        return None


def import_champions(settings: Settings) -> list[Imported]:
    """Copy each domain's ``champion`` into BentoML's store (skipped when the latest copy is that champion)."""
    client = configure(settings)
    key = settings.city_key
    out = []
    for name, spec in domains().items():
        champion = current_champion(client, name, key)
        if champion is None:
            out.append(Imported(name, None, None, "missing"))
            continue
        latest = _latest(bento_name(name, key))
        if latest is not None and latest.info.labels.get("run_id") == champion.run_id:
            out.append(Imported(name, str(latest.tag), str(champion.version), "unchanged"))
            continue
        family, booster = load_native(f"models:/{registered_name(name, key)}/{champion.version}")
        run = client.get_run(champion.run_id)
        metrics = {k: v for k, v in run.data.metrics.items() if k.startswith(("holdout_", "baseline_", "oracle_"))}
        metadata = {"family": family, "features": list(spec.features), "registered_model": registered_name(name, key),
                    "registry_version": str(champion.version), "run_id": champion.run_id,
                    "feature_set_version": run.data.tags.get("feature_set_version"),
                    "trained_at": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC").isoformat(),
                    "holdout_metrics": metrics, "primary_metric": spec.primary_metric}
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / BOOSTER_FILE[family]
            booster.save_model(str(staged))
            metadata["booster_sha256"] = file_sha256(staged)
            with bentoml.models.create(bento_name(name, key), labels={"domain": name, "run_id": champion.run_id,
                                                                "registry_version": str(champion.version)},
                                       metadata=metadata) as model:
                shutil.copyfile(staged, Path(model.path) / BOOSTER_FILE[family])
        out.append(Imported(name, str(model.tag), str(champion.version), "imported"))
    return out


def _fingerprint(settings: Settings, names: list[str], store: str) -> str:
    digest = hashlib.sha256(settings.city_config.model_dump_json().encode() + store.encode())
    for name in names:
        digest.update(files_stamp(source_files(settings.raw_dir, name)).encode())
    return digest.hexdigest()[:16]


def snapshot_sources(settings: Settings) -> str:
    """Store the canonical frames every domain's builder reads as one model: the static layers from the raw
    folder, the observations from the observation store (back-filled from the raw files first), with the
    store's URL and version so each worker then follows the store from there."""
    names = sorted({s for spec in domains().values() for s in spec.sources})
    store = ObservationStore.for_settings(settings)
    backfill(store, settings.raw_dir)
    version = store.version()
    fingerprint = _fingerprint(settings, names, f"{store.url}#{version}")
    latest = _latest(context_name(settings.city_key))
    if latest is not None and latest.info.labels.get("fingerprint") == fingerprint:
        return str(latest.tag)
    sources = Sources.from_settings(settings)
    held = {name: store.frame(name) for name in LIVE_SOURCES if name in names}
    # an empty source is left out, not resolved: a city without air stations has no air rows to match
    live = {name: sources.resolve(name, frame) for name, frame in held.items() if len(frame)}
    frames = {**sources.loaded([n for n in names if n not in held]), **{n: f for n, f in live.items() if len(f)}}
    with bentoml.models.create(context_name(settings.city_key), labels={"fingerprint": fingerprint},
                               metadata={"city": json.loads(settings.city_config.model_dump_json(exclude_none=True)),
                                         "sources": sorted(frames), "store_url": store.url,
                                         "store_version": version}) as model:
        for name, frame in frames.items():
            frame.to_parquet(Path(model.path) / f"{name}.parquet", index=False)
    return str(model.tag)


def training_reference(settings: Settings, name: str, model) -> dict:
    """The monitoring reference of ``model`` (a loaded champion of domain ``name``): up to REFERENCE_ROWS rows
    of its feature table scored by it, profiled overall and per month of ``spec.time``
    (:func:`live.monitor.training_profile`)."""
    from features import store as table_store
    from features.build import table_path
    from live.monitor import REFERENCE_ROWS, training_profile
    from training.models import predict

    spec = domains()[name]
    rows = table_store.sample(table_path(settings.features_dir, name), REFERENCE_ROWS, [spec.time, *spec.features])
    X = rows[list(spec.features)].astype("float64")
    return training_profile(X, predict(model.family, model.booster, X), rows[spec.time])


def ensure_references(settings: Settings) -> dict[str, str]:
    """Each served domain's monitoring reference (live/monitor.py): a profile of up to 50,000 rows of its
    feature table scored by the champion, overall and per month of the table's time column (``spec.time``),
    made again when the champion or the profile's layout changed. Domain -> what was done."""
    from features import store as table_store
    from features.build import table_path
    from live.monitor import PROFILE_VERSION, references, store_reference

    db = ObservationStore.for_settings(settings).engine
    held, out = references(db), {}
    models, _ = load_models()
    for name, model in models.items():
        tag, path = model.info["bento_tag"], table_path(settings.features_dir, name)
        if held.get(name, {}).get("model") == tag and held[name].get("version") == PROFILE_VERSION:
            out[name] = "unchanged"
        elif not table_store.exists(path):
            out[name] = f"no feature table at {path}"
        else:
            store_reference(db, name, tag, training_reference(settings, name, model))
            out[name] = "made"
    return out


def load_context() -> tuple[Sources, ObservationStore | None, int]:
    """The snapshot as in-memory Sources, the observation store it was taken from and the store's version
    then (raises NotFound when there is none). The store is None when it cannot be reached (a Bento served
    away from it): the service then answers from the snapshot alone, and says so in its log."""
    model = bentoml.models.get(f"{context_name()}:latest")
    meta = model.info.metadata
    city = City.model_validate(meta["city"])
    frames = {name: pd.read_parquet(Path(model.path) / f"{name}.parquet") for name in meta["sources"]}
    store = None
    if meta.get("store_url"):
        try:
            store = ObservationStore(meta["store_url"])
        except Exception as exc:  # the snapshot still answers; following is what is lost
            log.error("observation store %s not reachable (%s): serving the snapshot only", meta["store_url"], exc)
    return Sources.from_frames(frames, city), store, int(meta.get("store_version", 0))


def load_models() -> tuple[dict[str, LoadedModel], dict[str, str]]:
    """Every domain's latest booster from BentoML's store, and the reason for each one that failed."""
    models, problems = {}, {}
    for name in domains():
        try:
            model = bentoml.models.get(f"{bento_name(name)}:latest")
            meta = model.info.metadata
            path = str(Path(model.path) / BOOSTER_FILE[meta["family"]])
            # Check the bytes before parsing: LightGBM aborts the whole process on a truncated file.
            if file_sha256(Path(path)) != meta.get("booster_sha256"):
                raise ValueError("its booster file does not match the checksum recorded at import (corrupt?)")
            # One thread per prediction: requests run in parallel across workers, and a thread pool's
            # start-up costs more than a one-cell prediction.
            if meta["family"] == "lightgbm":
                booster = lgb.Booster(model_file=path, params={"num_threads": 1})
            else:
                booster = xgb.Booster(model_file=path)
                booster.set_param({"nthread": 1})
            if list(meta["features"]) != list(domains()[name].features):
                raise ValueError(f"its features differ from the code's {domains()[name].feature_set_version}")
            models[name] = LoadedModel(meta["family"], booster, {**meta, "bento_tag": str(model.tag)})
        except NotFound:
            problems[name] = f"no {bento_name(name)} in the BentoML model store (run `urban-safety serve`)"
        except Exception as exc:  # a corrupt or unreadable model must not stop the other domains
            problems[name] = f"{bento_name(name)} could not be loaded: {type(exc).__name__}: {exc}"
    return models, problems
