"""Cron schedule parsing errors, as ``github.com/robfig/cron/v3``'s ``ParseStandard``.

Role: the CronJob check reports ``cron.ParseStandard(schedule)``'s error text
verbatim ("expected exactly 5 fields, found 1: [foo]", "end of range (70) above
maximum (59): 0-70" ...). croniter accepts a different grammar (seconds, ``L``,
``#``), so this module reimplements robfig's standard parser instead.

Invariants:
- ``parse_error(spec)`` is None exactly when robfig would accept ``spec``; otherwise
  it is robfig's error message.
- Time zone names are checked against the system tz database (Go's
  ``time.LoadLocation`` reads the same files).
"""
from __future__ import annotations

import re
import zoneinfo

_MONTHS = {name: i + 1 for i, name in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_DAYS = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (min, max, names) for minute, hour, day of month, month, day of week.
_BOUNDS = [(0, 59, None), (0, 23, None), (1, 31, None), (1, 12, _MONTHS), (0, 6, _DAYS)]
_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_GO_INT = re.compile(r"^[+-]?[0-9]+\Z")
_DURATION = re.compile(r"^[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+\Z")


class CronError(ValueError):
    pass


def load_location(name: str) -> str | None:
    """Go's ``time.LoadLocation`` error text for ``name``, or None when it loads."""
    if name in ("", "UTC", "Local"):
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, IsADirectoryError):
        return f"unknown time zone {name}"
    return None


def _atoi(expr: str) -> int:
    if not _GO_INT.match(expr):
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing '
                        f'"{expr}": invalid syntax')
    num = int(expr)
    if not -(1 << 63) <= num < (1 << 63):
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing '
                        f'"{expr}": value out of range')
    if num < 0:
        raise CronError(f"negative number ({num}) not allowed: {expr}")
    return num


def _int_or_name(expr: str, names: dict | None) -> int:
    if names is not None and expr.lower() in names:
        return names[expr.lower()]
    return _atoi(expr)


def _range(expr: str, low: int, high: int, names: dict | None) -> None:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    single = len(low_high) == 1
    if low_high[0] in ("*", "?"):
        start, end = low, high
    else:
        start = _int_or_name(low_high[0], names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    step = 1
    if len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if single:
            end = high
    elif len(range_and_step) > 2:
        raise CronError(f"too many slashes: {expr}")
    if start < low:
        raise CronError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise CronError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")


def _descriptor(spec: str) -> None:
    if spec in _DESCRIPTORS:
        return
    if spec.startswith("@every "):
        duration = spec[len("@every "):]
        if not _DURATION.match(duration) or duration in ("", "+", "-"):
            raise CronError(f'failed to parse duration {spec}: time: invalid duration '
                            f'"{duration}"')
        return
    raise CronError(f"unrecognized descriptor: {spec}")


def _parse(spec: str) -> None:
    if not spec:
        raise CronError("empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        location = spec[spec.index("=") + 1:space if space >= 0 else len(spec) - 1]
        problem = load_location(location)
        if problem is not None:
            raise CronError(f"provided bad location {location}: {problem}")
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        _descriptor(spec)
        return
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    for text, (low, high, names) in zip(fields, _BOUNDS):
        for expr in [part for part in text.split(",") if part]:
            _range(expr, low, high, names)


def parse_error(spec: str) -> str | None:
    try:
        _parse(spec)
    except CronError as exc:
        return str(exc)
    return None
