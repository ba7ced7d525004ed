"""PromQL templates for service graphs: safe placeholder filling, default panels, ranges and steps. No I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from quarterdeck.errors import Invalid

__all__ = [
    "DEFAULT_PANELS",
    "DURATION_PLACEHOLDERS",
    "PLACEHOLDERS",
    "RANGES",
    "Panel",
    "choose_step",
    "escape_label_value",
    "format_duration",
    "parse_range",
    "placeholders_in",
    "rate_window",
    "render",
    "validate_template",
]

# Label-value placeholders must sit inside a double-quoted PromQL string; duration placeholders are
# written bare (`[{{range}}]`) and their values must look like a Prometheus duration.
DURATION_PLACEHOLDERS = frozenset({"range"})
PLACEHOLDERS = frozenset({"service", "namespace", "env"}) | DURATION_PLACEHOLDERS

_OPEN = "{{"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_DURATION = re.compile(r"(?:[0-9]+(?:ms|[smhdwy]))+")


@dataclass(frozen=True)
class Panel:
    """One graph on a service page; `query` is a template (see `render`)."""

    key: str
    title: str
    unit: str
    query: str


def _latency(quantile: str) -> str:
    return (
        f"histogram_quantile({quantile}, sum by (le) "
        '(rate(http_request_duration_seconds_bucket{service="{{service}}"}[{{range}}])))'
    )


DEFAULT_PANELS: tuple[Panel, ...] = (
    Panel(
        key="request_rate",
        title="Request rate",
        unit="req/s",
        query='sum(rate(http_requests_total{service="{{service}}"}[{{range}}]))',
    ),
    Panel(
        key="error_ratio",
        title="Error ratio (5xx)",
        unit="ratio",
        # `or vector(0)`: with no 5xx series at all the ratio is 0, not a missing line.
        query=(
            '(sum(rate(http_requests_total{service="{{service}}",code=~"5.."}[{{range}}])) or vector(0))'
            ' / sum(rate(http_requests_total{service="{{service}}"}[{{range}}]))'
        ),
    ),
    Panel(key="latency_p50", title="Latency p50", unit="seconds", query=_latency("0.5")),
    Panel(key="latency_p99", title="Latency p99", unit="seconds", query=_latency("0.99")),
)


@dataclass(frozen=True)
class _Slot:
    name: str
    start: int
    end: int
    quoted: bool  # inside a "..." string


def _scan(template: str) -> list[_Slot]:
    """Every placeholder of `template` with whether it sits in a double-quoted string.

    Follows PromQL's lexer: "..." and '...' strings with backslash escapes, `...` raw strings, and
    `#` comments to the end of the line. A `{{` that does not open a well-formed placeholder is an error.
    """
    slots: list[_Slot] = []
    quote: str | None = None
    i = 0
    while i < len(template):
        char = template[i]
        if template.startswith(_OPEN, i):
            match = _PLACEHOLDER.match(template, i)
            if match is None:
                raise Invalid(
                    f"Malformed placeholder at offset {i} of template {template!r}: write {{{{name}}}}.",
                    code="observability.bad_placeholder",
                    details={"template": template, "offset": i},
                )
            slots.append(_Slot(match.group(1), i, match.end(), quoted=quote == '"'))
            i = match.end()
            continue
        if quote is None:
            if char in "\"'`":
                quote = char
            elif char == "#":
                newline = template.find("\n", i)
                i = len(template) if newline < 0 else newline
                continue
        elif char == "\\" and quote != "`":
            i += 2
            continue
        elif char == quote:
            quote = None
        i += 1
    return slots


def _check_slots(template: str, slots: list[_Slot], allowed: Mapping[str, object] | set[str]) -> None:
    for slot in slots:
        if slot.name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise Invalid(
                f"Unknown placeholder {{{{{slot.name}}}}} in template {template!r} (known: {known}).",
                code="observability.unknown_placeholder",
                details={"placeholder": slot.name, "template": template},
            )
        if slot.name not in DURATION_PLACEHOLDERS and not slot.quoted:
            raise Invalid(
                f"Placeholder {{{{{slot.name}}}}} in template {template!r} must sit inside a double-quoted "
                f'string, e.g. service="{{{{{slot.name}}}}}".',
                code="observability.unquoted_placeholder",
                details={"placeholder": slot.name, "template": template},
            )


def placeholders_in(template: str) -> set[str]:
    return {slot.name for slot in _scan(template)}


def validate_template(template: str, allowed: set[str]) -> None:
    """Check a team's saved query before storing it: well-formed, known and correctly placed placeholders."""
    _check_slots(template, _scan(template), allowed)


def escape_label_value(value: str) -> str:
    """`value` escaped for the inside of a PromQL double-quoted string (Go escape rules)."""
    out: list[str] = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill the placeholders of `template`.

    Label values are escaped so that no value can end its string and add PromQL of its own. They are
    not regex-escaped: in `label=~"{{x}}"` the value is still read as a regular expression.
    """
    slots = _scan(template)
    _check_slots(template, slots, values)
    pieces: list[str] = []
    last = 0
    for slot in slots:
        value = values[slot.name]
        if slot.name in DURATION_PLACEHOLDERS:
            if not _DURATION.fullmatch(value):
                raise Invalid(
                    f"Value {value!r} for {{{{{slot.name}}}}} is not a Prometheus duration like 5m or 90s.",
                    code="observability.bad_duration",
                    details={"placeholder": slot.name, "value": value},
                )
            filled = value
        else:
            filled = escape_label_value(value)
        pieces += [template[last : slot.start], filled]
        last = slot.end
    pieces.append(template[last:])
    return "".join(pieces)


_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_duration(seconds: float) -> str:
    """Whole seconds (rounded up) as a Prometheus duration in the largest exact unit: 60 → 1m, 90 → 90s."""
    whole = max(1, math.ceil(seconds))
    for suffix, size in _UNITS:
        if whole % size == 0:
            return f"{whole // size}{suffix}"
    raise AssertionError("unreachable: every whole number is a multiple of 1s")


def rate_window(step_seconds: float) -> str:
    """The `[range]` for rate(): four steps, so each point spans several scrapes, and never under 1m."""
    return format_duration(max(4 * step_seconds, 60))


RANGES: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


def parse_range(text: str) -> timedelta:
    """The time range a graph page offers ("15m", "1h", "6h", "24h", "7d")."""
    try:
        return RANGES[text.strip()]
    except KeyError:
        raise Invalid(
            f"Range {text!r} is not one of {', '.join(RANGES)}.",
            code="observability.bad_range",
            details={"value": text, "allowed": list(RANGES)},
        ) from None


# 15s is the conventional scrape interval: a finer step only repeats samples.
_NICE_STEPS = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def choose_step(start: datetime, end: datetime, *, max_points: int = 240) -> float:
    """The smallest nice step (15s, 30s, 1m, 2m, 5m, ...; whole days past 1d) giving at most `max_points`."""
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, not {max_points}")
    span = (end - start).total_seconds()
    if span <= 0:
        raise Invalid(
            f"Graph range ends ({end.isoformat()}) before it starts ({start.isoformat()}).",
            code="observability.empty_range",
            details={"start": start.isoformat(), "end": end.isoformat()},
        )
    # A range query has floor(span / step) + 1 points (both ends count): at most max_points
    # exactly when step > span / max_points.
    limit = span / max_points
    for step in _NICE_STEPS:
        if step > limit:
            return float(step)
    return float((math.floor(limit / 86400) + 1) * 86400)
