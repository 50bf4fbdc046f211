"""host.json durations as the host reads and prints them: .NET TimeSpan text <-> seconds.

`functionTimeout` is a TimeSpan (`[d.]hh:mm:ss[.fffffff]`); `-1` (or null) means unbounded. The
host prints a TimeSpan in its constant format (`00:30:00`, `00:00:00.5000000`, `1.00:00:00`),
which is what its timeout message quotes, so devhost formats it the same way.
"""

from __future__ import annotations

import re

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$")


def parse_timespan(text: str | float | None) -> float | None:
    """Seconds, or None for unbounded (`-1`, null). A bare number is taken as seconds."""
    if text is None:
        return None
    value = str(text).strip()
    if value in ("-1", "-1.00:00:00", ""):
        return None
    match = _TIMESPAN.match(value)
    if match is None:
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"not a TimeSpan (hh:mm:ss) or a number of seconds: {text!r}") from None
    else:
        days, hours, minutes, secs, fraction = match.groups()
        seconds = (int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(secs)
                   + (int(fraction.ljust(7, "0")) / 1e7 if fraction else 0.0))
    if seconds < 0:
        return None
    if seconds == 0:
        raise ValueError(f"a timeout of zero is not allowed: {text!r}")
    return seconds


def format_timespan(seconds: float) -> str:
    """The TimeSpan constant ("c") format: `[d.]hh:mm:ss[.fffffff]`."""
    ticks = round(seconds * 1e7)
    whole, fraction = divmod(ticks, 10**7)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}" + (f".{fraction:07d}" if fraction else "")
    return f"{days}.{text}" if days else text
