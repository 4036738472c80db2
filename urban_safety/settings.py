"""One settings object, read from the environment (prefix ``URBAN_SAFETY_``) and an optional ``.env``."""

from __future__ import annotations

import os
import re
from datetime import date
from functools import cached_property
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The default city keeps the unqualified paths and names (``data/``, ``urban-safety-<domain>``).
DEFAULT_CITY = "incheon"


def city_key_of(city: str) -> str:
    """The short name qualifying a city's state: "" for :data:`DEFAULT_CITY`, else the built-in name or the
    TOML file's stem, lower-case, other characters as "-" (``daejeon``, ``/x/My City.toml`` -> ``my-city``)."""
    key = re.sub(r"[^a-z0-9_]+", "-", Path(city).stem.lower()).strip("-")
    return "" if key == DEFAULT_CITY else key


class Settings(BaseSettings):
    """Paths, seed, city and grid. Nothing is created or read when this object is built."""

    model_config = SettingsConfigDict(env_prefix="URBAN_SAFETY_", env_file=".env", extra="ignore")

    root: Path = PROJECT_ROOT
    data_dir: Path | None = None
    city: str = DEFAULT_CITY
    grid_m: int | None = None
    seed: int = 42
    start: date = date(2021, 1, 1)
    years: int = 3
    quake_scenarios: int = 300
    optuna_storage: str | None = None  # any SQLAlchemy URL; default SQLite inside mlruns/

    @property
    def city_key(self) -> str:
        """"" for the default city, else the city's short name: see :func:`city_key_of`."""
        return city_key_of(self.city)

    @property
    def data(self) -> Path:
        """Root of generated and imported data: ``URBAN_SAFETY_DATA_DIR`` if set, else ``<root>/data`` for the
        default city and ``<root>/data/<city key>`` for another one (its own observations, tables, store)."""
        if self.data_dir is not None:
            return self.data_dir
        return self.root / "data" / self.city_key if self.city_key else self.root / "data"

    @property
    def raw_dir(self) -> Path:
        """Raw source files, one sub-folder per source; never changed in place."""
        return self.data / "raw"

    @property
    def truth_dir(self) -> Path:
        """The generator's true expected values: for evaluation only, never read by a feature."""
        return self.data / "truth"

    @property
    def features_dir(self) -> Path:
        """One Parquet feature table per domain."""
        return self.data / "features"

    @property
    def mlruns_dir(self) -> Path:
        return self.root / "mlruns"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking and registry URI: ``MLFLOW_TRACKING_URI`` if set, else SQLite in ``mlruns/``."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlruns_dir / 'mlflow.db'}"

    @property
    def optuna_url(self) -> str:
        """Optuna storage: ``URBAN_SAFETY_OPTUNA_STORAGE`` (any SQLAlchemy URL) or SQLite in ``mlruns/``."""
        return self.optuna_storage or f"sqlite:///{self.mlruns_dir / 'optuna.db'}"

    @cached_property
    def city_config(self):
        """The city (boundary, districts, stations) as loaded from its TOML file."""
        from features.city import load_city

        return load_city(self.city, grid_m=self.grid_m)


def get_settings(**overrides) -> Settings:
    """Build settings from the environment, with explicit overrides (used by the CLI and tests)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
