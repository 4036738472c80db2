"""Fine dust domain: tomorrow's daily mean PM10 and PM2.5 at each station, with the Korean grades.

Long format: one row per station x pollutant (0 = PM10, 1 = PM2.5) x issue day, so one model serves
both pollutants. The issue time is 17:00 KST of day d, the national forecast's issue hour; the target is
the daily mean of day d+1 (needs >= 18 valid hours). Observation features use observations stamped <= the
issue time only: the station's own levels, the upwind background station (백령도), the city mean and the
weather. The background station is a feature, never a target row.

Tomorrow's weather is an input too (:mod:`features.domains.fine_dust.forecast`): the request's KMA short-range
forecast of the target day, or in the training table the target day's observed weather degraded by a
forecast error (the ``fc_*`` features are the spec's ``forecast`` inputs). Hourly values and advisories
follow from the daily forecast in :mod:`features.domains.fine_dust.hourly`.
"""

from __future__ import annotations

from datetime import timedelta

from features.domains.fine_dust.evaluation import (
    FAR_BAD,
    GRADE_ACCURACY,
    POD_BAD,
    REGION_GRADE_ACCURACY,
    baseline,
    oracle,
)
from features.domains.fine_dust.features import (
    BACKGROUND_WINDOWS,
    CONDITIONS,
    FEATURES,
    FORECAST,
    OBSERVED,
    STATION_WINDOWS,
    UNITS,
    build_rows,
    build_table,
)
from features.domains.fine_dust.grades import (  # noqa: F401  (the domain's public names)
    GRADE_NAMES_KO,
    GRADES,
    INDEX_BREAKS,
    ISSUE_HOUR,
    POLLUTANTS,
    UPPER_BOUNDS,
    grade,
    grade_index,
    grade_name,
    pollutant_grade,
)
from features.domains.fine_dust.serving import SERVING
from features.metrics import MAE, RMSE
from features.registry import DomainSpec, register

SPEC = register(DomainSpec(
    name="fine_dust",
    title="Fine dust (PM10, PM2.5) tomorrow",
    task="regression",
    target="pm_next",
    keys=("station_code", "pollutant"),
    time="time",
    horizon=timedelta(hours=24 + 24 - ISSUE_HOUR),  # 17:00 on day d to midnight closing day d+1
    features=FEATURES,
    conditions=CONDITIONS,
    sources=("airkorea", "asos"),
    feature_set_version="fine_dust-v4",
    build_table=build_table,
    build_rows=build_rows,
    serving=SERVING,
    metrics=(RMSE, MAE, GRADE_ACCURACY, REGION_GRADE_ACCURACY, POD_BAD, FAR_BAD),
    primary_metric="rmse",
    baseline=baseline,
    oracle=oracle,
    # Higher levels at the station, across the city or upwind (transboundary dust arrives from the west a
    # day later) never lower tomorrow's concentration. Weather goes both ways and stays free.
    # Tomorrow's rain washes out (wet deposition); more upwind dust on more westerly flow brings more.
    monotone={**dict.fromkeys(("own_today_mean", "own_yesterday_mean", "own_mean_72h", "own_last_hour", *STATION_WINDOWS,
                               "pm10_today_max", *BACKGROUND_WINDOWS, "city_pm10_today_mean", "city_pm25_today_mean",
                               "fc_westerly_transport"), 1), "fc_rain_mm": -1},
    forecast=FORECAST,
    essential=("own_today_mean",),
    not_drift=dict.fromkeys(("doy_sin", "doy_cos"), "calendar position: day of year of the issue"),
    extra={"grades": grade, "grade_names": grade_name, "units": UNITS, "overridable": OBSERVED},
))
