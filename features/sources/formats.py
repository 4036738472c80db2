"""The raw source formats: where each source's files live and the columns the real exports print.

This module is the contract between the embedded-data generator (which writes these formats) and the
loaders (which read them, from the generator or from real downloads). Loaders return the *canonical*
frames described in ``features/sources/canonical.py``.

Layout: ``<raw_dir>/<source>/<files>``. ``urban-safety data import`` replaces one source's folder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFormat:
    name: str
    title: str
    pattern: str  # glob inside the source folder (any container: .csv, .xlsx, .xls, .json, .txt, .shp...)
    encoding: str  # what the generator writes; loaders accept CP949 and UTF-8 (with or without BOM)
    columns: tuple[str, ...]  # header as the source prints it (optional columns listed in ``optional``)
    optional: tuple[str, ...] = ()


ASOS = SourceFormat(
    "asos", "KMA ASOS hourly weather", "OBS_ASOS_TIM_*", "cp949",
    ("지점", "지점명", "일시", "기온(°C)", "기온 QC플래그", "강수량(mm)", "강수량 QC플래그", "풍속(m/s)",
     "풍속 QC플래그", "풍향(16방위)", "풍향 QC플래그", "습도(%)", "습도 QC플래그", "증기압(hPa)",
     "이슬점온도(°C)", "현지기압(hPa)", "현지기압 QC플래그", "해면기압(hPa)", "해면기압 QC플래그", "적설(cm)"),
)
AWS = SourceFormat(
    "aws", "KMA AWS hourly weather", "OBS_AWS_TIM_*", "cp949",
    ("지점", "일시", "기온(°C)", "풍향(deg)", "풍속(m/s)", "강수량(mm)", "현지기압(hPa)", "해면기압(hPa)",
     "습도(%)", "일사", "일조"),
)
AIRKOREA = SourceFormat(
    "airkorea", "AirKorea final hourly air quality", "AIRKOREA_*", "utf-8-sig",
    ("지역", "측정소코드", "측정소명", "측정일시", "SO2", "CO", "O3", "NO2", "PM10", "PM25", "주소"),
)
TAAS = SourceFormat(
    "taas", "TAAS traffic accident extract", "TAAS_*", "cp949",
    ("사고일시", "요일", "기상상태", "시군구", "도로형태", "노면상태", "사고유형", "가해운전자 차종",
     "사망자수", "중상자수", "경상자수", "부상신고자수", "ECLO", "경도", "위도"),
    optional=("가해운전자 차종", "경도", "위도", "발생위치X_UTMK", "발생위치Y_UTMK"),
)
QUAKES = SourceFormat(
    "quakes", "KMA earthquake list", "KMA_EQK_*", "cp949",
    ("번호", "발생시각", "규모", "깊이(km)", "최대진도", "위도", "경도", "위치"),
)
QUAKE_STATIONS = SourceFormat(
    "quake_stations", "Strong-motion records of an earthquake (PGA per station)", "QUAKE_STATIONS_*", "utf-8",
    ("지진번호", "관측소", "위도", "경도", "최대지반가속도", "단위"),
)
BUILDINGS = SourceFormat(
    "buildings", "Building register title part (건축물대장 표제부)", "BLD_TITLE_*", "cp949",
    ("대지위치", "시군구코드", "주용도", "주구조", "기타구조", "연면적(㎡)", "지상층수", "지하층수", "높이(m)",
     "사용승인일", "내진설계적용여부", "내진능력", "위도", "경도"),
    optional=("기타구조", "대지위치", "내진능력"),
)
FLOOD_TRACES = SourceFormat(
    "flood_traces", "Flood trace map (침수흔적도)", "FLUD_TRACE_*", "utf-8",
    ("FLUD_SHIM", "FLUD_GD", "FLUD_YEAR", "FLUD_NM2", "SAT_DATE", "END_DATE", "SAT_TM", "SGG_CD",
     "EMD_CD", "geometry"),
    optional=("SAT_TM",),
)
TIDE = SourceFormat(
    "tide", "KHOA tide observations", "TIDE_*", "utf-8",
    ("관측소명", "관측시간", "실측조위(cm)", "예측조위(cm)"),
)
NOWCAST = SourceFormat(
    "nowcast", "KMA ultra-short-range forecast, 1 h rain (초단기예보 RN1)", "VSRT_RN1_*", "utf-8",
    ("baseDate", "baseTime", "fcstDate", "fcstTime", "category", "fcstValue", "nx", "ny"),
)
STATIC = SourceFormat(
    "static", "Static grid layers (one row per cell)", "grid_layers*", "utf-8",
    ("cell_id", "elevation_m", "slope_deg", "dist_coast_m", "dist_stream_m", "impervious_share",
     "drain_capacity_mmh", "manhole_density_km2", "reclaimed", "road_km_arterial", "road_km_collector",
     "road_km_local", "intersections", "traffic_volume", "bus_stops", "schools", "commercial_share",
     "pop_day", "pop_night", "vs30_mps"),
)
DAMAGE_SURVEYS = SourceFormat(
    "damage_surveys", "Earthquake scenario damage surveys", "DAMAGE_SURVEY_*", "utf-8",
    ("시나리오번호", "발생시각", "규모", "깊이(km)", "위도", "경도", "격자ID", "조사건물수", "중파이상건수",
     "표본가중치"),
    optional=("표본가중치",),  # a generated scenario set's sampling weight (see contracts.DAMAGE_SURVEYS)
)

PARCELS = SourceFormat(
    "parcels", "Parcel or building-footprint layer with the PNU (연속지적도 / GIS건물통합정보)", "PARCEL_*", "utf-8",
    ("PNU", "geometry"),
)
ADDRESSES = SourceFormat(
    "addresses", "Geocoded addresses of the building register (대지위치 with 위도, 경도)", "ADDRESS_*", "utf-8",
    ("대지위치", "위도", "경도"),
)

FORMATS: dict[str, SourceFormat] = {
    f.name: f for f in (ASOS, AWS, AIRKOREA, TAAS, QUAKES, QUAKE_STATIONS, BUILDINGS, FLOOD_TRACES, TIDE, NOWCAST, STATIC,
                        DAMAGE_SURVEYS, PARCELS, ADDRESSES)
}
# Layers only the user brings: the embedded data set places its buildings by coordinates, and its
# scenarios have no strong-motion records (they come with a real quake).
PLACEMENT = ("parcels", "addresses")
USER_SUPPLIED = (*PLACEMENT, "quake_stations")
# Files that travel with a Shapefile's .shp and are read with it, never on their own.
SIDECARS = (".shx", ".dbf", ".prj", ".cpg", ".sbn", ".sbx", ".qix", ".xml", ".qmd")
