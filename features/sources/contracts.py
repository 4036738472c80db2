"""Contracts by source: how each portal names, writes and leaves out its fields, declared as data.

A contract lists, for each field the loader reads (its *key*), the header names the field goes by in
every known variant of the source (the name the source prints first: messages use it), which fields may
be absent, the cell markers that mean "no value", the time layouts (regexes with named groups year,
month, day, hour, minute) and the header-less layouts (field positions). A new portal variant is a line
here; the loaders turn the fields into the canonical frames of ``canonical.py`` (the pandera schemas
stay the one definition of each canonical frame).

Headers are matched by :func:`features.sources.loaders.csvfile.header_key`: width, unit suffix,
spaces and dots do not matter ("강수량 (mm)" = "강수량(mm)", "PM2.5" = "PM25", "관측조위(Cm)" = "관측조위").
"""

from __future__ import annotations

from dataclasses import dataclass, field

YMD = r"(?P<year>\d{4})\s*(?:년|[-./])?\s*(?P<month>\d{1,2})\s*(?:월|[-./])?\s*(?P<day>\d{1,2})\s*일?"
HOUR = r"(?P<hour>\d{1,2})\s*(?:시|:(?P<minute>\d{2})(?::\d{2}(?:\.\d+)?)?)?"


@dataclass(frozen=True)
class Layout:
    """A header-less layout: ``width`` fields per row, each key at its (0-based) position."""

    name: str
    width: int
    positions: dict[str, int]


@dataclass(frozen=True)
class Contract:
    source: str
    columns: dict[str, tuple[str, ...]]
    optional: tuple[str, ...] = ()
    missing: tuple[str, ...] = ("",)
    times: tuple[str, ...] = ()  # regexes tried in turn on the time field
    layouts: tuple[Layout, ...] = ()
    one_of: tuple[str, ...] = ()  # at least one of these optional fields must be present
    sentinels: tuple[float, ...] = ()  # measured values that mean "not observed" (KMA's -99, -999)
    notes: dict[str, str] = field(default_factory=dict)

    def required(self) -> list[str]:
        return [k for k in self.columns if k not in self.optional]


# The canonical column names (features/sources/canonical.py) are one more variant of every observation
# source: the rows `POST /observations` takes besides the open APIs' items.

# --- KMA --------------------------------------------------------------------------------------------

#: KMA's open APIs and hub files write -99 or -999 (and -99.9) for a value not observed (기상청 API허브:
#: "결측: -99, -999"): missing, never a temperature or an amount.
KMA_SENTINELS = (-99.0, -999.0, -99.9)

KMA_TIMES = (rf"^{YMD}[ T]{HOUR}$", r"^(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})(?P<hour>\d{2})(?P<minute>\d{2})$")
WEATHER = Contract(
    "weather",
    {
        "station_id": ("지점", "지점번호", "stnId", "STN", "station_id"),
        "station_name": ("지점명", "stnNm"),
        "time": ("일시", "tm", "TM", "time"),
        "temp_c": ("기온(°C)", "ta", "TA", "temp_c"),
        "rain_mm": ("강수량(mm)", "rn", "RN", "강수량", "rain_mm"),
        "rain_qc": ("강수량 QC플래그", "rnQcflg"),
        "wind_ms": ("풍속(m/s)", "ws", "WS", "wind_ms"),
        "wind_dir_deg": ("풍향(16방위)", "풍향(deg)", "wd", "WD", "wind_dir_deg"),
        "humidity_pct": ("습도(%)", "hm", "HM", "humidity_pct"),
        "sea_pressure": ("해면기압(hPa)", "ps", "PS", "pressure_hpa"),
        "local_pressure": ("현지기압(hPa)", "pa", "PA"),
        "snow_cm": ("적설(cm)", "dsnw", "snow_cm"),
        # Minute data give a running total of the day's rain instead of the minute's amount.
        "rain_cum_mm": ("누적강수량(mm)", "누적강수량", "rn_day"),
    },
    # Portal exports carry only the elements the user ticked: each element may be absent.
    optional=("station_name", "rain_qc", "temp_c", "rain_mm", "wind_ms", "wind_dir_deg", "humidity_pct",
              "sea_pressure", "local_pressure", "snow_cm", "rain_cum_mm"),
    one_of=("temp_c", "rain_mm", "wind_ms", "wind_dir_deg", "humidity_pct", "sea_pressure", "local_pressure",
            "snow_cm", "rain_cum_mm"),
    times=KMA_TIMES,
    sentinels=KMA_SENTINELS,
)
#: KMA's earthquake information API (data.go.kr 기상청_지진정보 조회서비스, getEqkMsg) stamps the origin time
#: as one number, YYYYMMDDHHMMSS (``tmEqk``).
EQK_TIME = r"^(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})(?P<hour>\d{2})(?P<minute>\d{2})(?P<second>\d{2})$"
QUAKES = Contract(
    "quakes",
    {
        # KMA's list numbers its rows; the API has no event id: an event without one is named by its
        # origin time (features/sources/loaders/kma.py), and a revision finds its event by time and place
        # (live/store.py).
        "event_no": ("번호", "event_id", "event_no"),
        "time": ("발생시각", "발생일시", "진원시", "tmEqk", "time"),
        "magnitude": ("규모", "mt", "magnitude"),
        "magnitude_type": ("규모유형", "magType", "magnitude_type"),
        "depth_km": ("깊이(km)", "깊이", "dep", "depth_km"),
        "max_intensity": ("최대진도", "진도", "inT", "max_intensity"),
        "lat": ("위도", "lat"),
        "lon": ("경도", "lon"),
        "location": ("위치", "발생위치", "참고사항", "loc", "location"),
    },
    optional=("event_no", "magnitude_type", "depth_km", "max_intensity", "location"),
    missing=("", "-"),
    times=(rf"^{YMD}[ T](?P<hour>\d{{1,2}}):(?P<minute>\d{{2}})(?::(?P<second>\d{{2}})(?:\.\d+)?)?$", EQK_TIME),
)
#: Strong-motion records of one event: peak ground acceleration at a station, in the unit the row names.
QUAKE_STATIONS = Contract(
    "quake_stations",
    {
        "event_no": ("지진번호", "event_id", "event_no"),
        "station": ("관측소", "지점", "관측소코드", "station"),
        "lat": ("위도", "lat"),
        "lon": ("경도", "lon"),
        "pga": ("최대지반가속도", "PGA", "pga"),
        "unit": ("단위", "pga_unit", "unit"),
    },
    missing=("", "-"),
)
NOWCAST = Contract(
    "nowcast",
    {
        "base_date": ("baseDate",),
        "base_time": ("baseTime",),
        "fcst_date": ("fcstDate",),
        "fcst_time": ("fcstTime",),
        "category": ("category",),
        "value": ("fcstValue",),
        "nx": ("nx",),
        "ny": ("ny",),
    },
    notes={"value": "RN1 as text: 강수없음, '1mm 미만', '3.5mm', '30.0~50.0mm', '50.0mm 이상'"},
)

# --- AirKorea -----------------------------------------------------------------------------------------

AIRKOREA = Contract(
    "airkorea",
    {
        "station_code": ("측정소코드", "stationCode", "station_code"),
        "station_name": ("측정소명", "stationName", "station_name"),
        "time": ("측정일시", "dataTime", "time"),
        "so2": ("SO2", "so2Value"),
        "co": ("CO", "coValue"),
        "o3": ("O3", "o3Value"),
        "no2": ("NO2", "no2Value"),
        "pm10": ("PM10", "pm10Value"),
        "pm25": ("PM25", "PM2.5", "pm25Value"),
    },
    # The real-time API names stations only; final data before 2015 has no PM2.5.
    optional=("station_code", "so2", "co", "o3", "no2", "pm25"),
    # The portal shows "-" for a value not measured, the API also 통신장애 / 점검및교정 / 장비점검.
    missing=("", "-", "통신장애", "점검및교정", "장비점검", "자료이상", "교정"),
    # Final data prints 2021010124; the real-time API "2021-01-01 24:00".
    times=(r"^(?P<year>\d{4})-?(?P<month>\d{2})-?(?P<day>\d{2})[ T]?(?P<hour>\d{2})(?::?00)?$",),
)

# --- TAAS ---------------------------------------------------------------------------------------------

TAAS = Contract(
    "taas",
    {
        "time": ("사고일시", "발생일시"),
        "weather": ("기상상태",),
        "district": ("시군구", "발생지시군구"),
        "road_type": ("도로형태",),
        "surface": ("노면상태",),
        "accident_type": ("사고유형",),
        "deaths": ("사망자수",),
        "serious": ("중상자수",),
        "minor": ("경상자수",),
        "reported": ("부상신고자수", "부상자수"),
        "eclo": ("ECLO",),
        "lon": ("경도",),
        "lat": ("위도",),
        "utmk_x": ("발생위치X_UTMK", "발생위치X(UTMK)"),
        "utmk_y": ("발생위치Y_UTMK", "발생위치Y(UTMK)"),
    },
    optional=("weather", "road_type", "surface", "accident_type", "eclo", "lon", "lat", "utmk_x", "utmk_y"),
    # "2016년 1월 1일 01시" (TAAS), "2019-01-01 00" (DACON / extracts), "2021-01-01 03:00".
    times=(rf"^{YMD}\s*{HOUR}$",),
)

# --- Building register --------------------------------------------------------------------------------

# The bulk download's title part (건축물대장 표제부, mart_djy_03.txt): 77 '|'-separated fields, no header.
REGISTER_BULK = Layout("표제부 bulk text (mart_djy_03)", 77, {
    "address": 5, "sgg_cd": 8, "bjdong_cd": 9, "plat_gb_cd": 10, "bun": 11, "ji": 12, "floor_area_m2": 28,
    "structure": 32, "other_structure": 33, "purpose": 35, "height_m": 42, "floors_above": 43,
    "floors_below": 44, "approval_date": 60, "seismic_design": 75, "seismic_ability": 76,
})
BUILDINGS = Contract(
    "buildings",
    {
        "sgg_cd": ("시군구코드", "sigunguCd"),
        "bjdong_cd": ("법정동코드", "bjdongCd"),
        "plat_gb_cd": ("대지구분코드", "platGbCd"),
        "bun": ("번", "bun"),
        "ji": ("지", "ji"),
        "address": ("대지위치", "platPlc"),
        "purpose": ("주용도", "주용도코드명", "mainPurpsCdNm"),
        "structure": ("주구조", "구조코드명", "strctCdNm"),
        "other_structure": ("기타구조", "etcStrct"),
        "floor_area_m2": ("연면적(㎡)", "totArea"),
        "floors_above": ("지상층수", "grndFlrCnt"),
        "floors_below": ("지하층수", "ugrndFlrCnt"),
        "height_m": ("높이(m)", "heit"),
        "approval_date": ("사용승인일", "useAprDay"),
        "seismic_design": ("내진설계적용여부", "rserthqkDsgnApplyYn"),
        "seismic_ability": ("내진능력", "rserthqkAblty"),
        "lat": ("위도", "lat", "latitude"),
        "lon": ("경도", "lon", "lng", "longitude"),
    },
    # No real register export has coordinates: buildings are placed by parcel number or address.
    optional=("bjdong_cd", "plat_gb_cd", "bun", "ji", "address", "other_structure", "seismic_ability",
              "floors_below", "height_m", "lat", "lon"),
    layouts=(REGISTER_BULK,),
    times=(r"^(?P<year>\d{4})-?(?P<month>\d{2})-?(?P<day>\d{2})$",),
)
# A parcel or building-footprint layer carrying the PNU (the national GIS building layer: A1 / PNU).
PARCELS = Contract(
    "parcels",
    {"pnu": ("PNU", "A1", "pnu", "고유번호"), "geometry": ("geometry", "WKT", "geom")},
)
# A geocoded address table: the register's 대지위치 (or road address) with coordinates.
ADDRESSES = Contract(
    "addresses",
    {"address": ("대지위치", "주소", "address", "platPlc", "도로명대지위치", "newPlatPlc"),
     "lat": ("위도", "lat", "latitude", "y"), "lon": ("경도", "lon", "lng", "longitude", "x")},
)

# --- Flood traces, tide -----------------------------------------------------------------------------

FLOOD_TRACES = Contract(
    "flood_traces",
    {
        "depth_m": ("FLUD_SHIM",),
        "grade": ("FLUD_GD",),
        "year": ("FLUD_YEAR",),
        "cause": ("FLUD_NM2",),
        "start_date": ("SAT_DATE",),
        "end_date": ("END_DATE",),
        "onset_time": ("SAT_TM",),
        "sgg_cd": ("SGG_CD",),
        "emd_cd": ("EMD_CD",),
        "geometry": ("geometry", "WKT", "geom"),
    },
    optional=("onset_time", "emd_cd", "cause", "grade"),
    missing=("", "-"),
    times=(r"^(?P<year>\d{4})-?(?P<month>\d{2})-?(?P<day>\d{2})$",),
    # SAT_TM is HHMM ("1800", "0600", "2400" = the end of the day) or a bare hour ("18").
    notes={"emd_cd": "10-digit 법정동 code, or 8 digits (읍면동 without 리) read as the 10-digit code ending 00"},
)
TIDE = Contract(
    "tide",
    {
        "station": ("관측소명", "관측소", "obsPostName", "obsvtrNm", "station"),
        "time": ("관측시간", "관측일시", "일시", "record_time", "obsrvnDt", "time"),
        "tide_cm": ("실측조위(cm)", "관측조위(cm)", "조위(cm)", "tide_level", "bscTdlvHgt", "tide_cm"),
        "tide_pred_cm": ("예측조위(cm)", "pre_tide_level", "tdlvHgt", "tide_pred_cm"),
    },
    optional=("tide_pred_cm",),
    missing=("", "-"),
    times=KMA_TIMES,
)

# --- Layers made for this product ------------------------------------------------------------------

DAMAGE_SURVEYS = Contract(
    "damage_surveys",
    {
        "scenario_id": ("시나리오번호",),
        "time": ("발생시각",),
        "magnitude": ("규모",),
        "depth_km": ("깊이(km)",),
        "lat": ("위도",),
        "lon": ("경도",),
        "cell_id": ("격자ID",),
        "buildings": ("조사건물수",),
        "damaged": ("중파이상건수",),
        "scenario_weight": ("표본가중치",),
    },
    # Sampling weight of a scenario drawn out of proportion to the catalogue's rates (generated scenario
    # sets); surveys of real events leave it out and weigh 1.
    optional=("scenario_weight",),
    times=QUAKES.times,
)
