"""The shop's local time: the day a decision counts against, and quiet-hours windows.

Event times are epoch milliseconds (UTC); days and quiet hours are wall-clock times in the
policy's time zone, so a day on which clocks change is 23 or 25 hours long and a quiet
window that ends at 08:00 ends at 08:00 local time on either side of the change.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
MINUTES_PER_DAY = 24 * 60


def local_datetime(ts_ms: int, zone: ZoneInfo) -> datetime:
    """The wall-clock time in ``zone`` at epoch milliseconds ``ts_ms``."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(zone)


def local_day(ts_ms: int, zone: ZoneInfo) -> int:
    """The local calendar day at ``ts_ms`` as a proleptic ordinal (``date.toordinal``)."""
    return local_datetime(ts_ms, zone).date().toordinal()


def next_day_start_ms(day: int, zone: ZoneInfo) -> int:
    """Epoch ms of the local midnight that ends local day ``day``."""
    return _wall_clock_ms(date.fromordinal(day + 1), time(0, 0), zone)


def _wall_clock_ms(day: date, at: time, zone: ZoneInfo) -> int:
    # A wall time skipped by a spring-forward change is read with the offset before it
    # (zoneinfo's fold=0), i.e. it lands just after the change.
    return round(datetime.combine(day, at, tzinfo=zone).timestamp() * 1000)


@dataclass(frozen=True)
class QuietHours:
    """A daily local window ``[start, end)`` in minutes after midnight; it wraps midnight
    when ``end < start`` ("22:00-08:00")."""

    start_minute: int
    end_minute: int

    def __str__(self) -> str:
        def hhmm(minute: int) -> str:
            return f"{minute // 60:02d}:{minute % 60:02d}"

        return f"{hhmm(self.start_minute)}-{hhmm(self.end_minute)}"

    def contains(self, ts_ms: int, zone: ZoneInfo) -> bool:
        """Whether ``ts_ms`` falls inside the window (local time)."""
        now = local_datetime(ts_ms, zone)
        minute = now.hour * 60 + now.minute
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute

    def end_after(self, ts_ms: int, zone: ZoneInfo) -> int:
        """Epoch ms of the first end of the window after ``ts_ms`` (when held actions go)."""
        now = local_datetime(ts_ms, zone)
        end = time(self.end_minute // 60, self.end_minute % 60)
        day = now.date()
        candidate = _wall_clock_ms(day, end, zone)
        if candidate <= ts_ms:
            candidate = _wall_clock_ms(day + timedelta(days=1), end, zone)
        return candidate


def parse_quiet_hours(text: str) -> QuietHours:
    """``"HH:MM-HH:MM"`` → QuietHours; ValueError with the reason otherwise."""
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(f"quiet_hours {text!r} is not 'HH:MM-HH:MM' (24-hour clock)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    window = QuietHours(h1 * 60 + m1, h2 * 60 + m2)
    if window.start_minute == window.end_minute:
        raise ValueError(f"quiet_hours {text!r} starts and ends at the same time")
    return window
