"""The small languages inside a pipeline file: durations ("90s", "1h30m"), analysis conditions
("< 0.01", "<= baseline * 1.1") and the placeholders of queries and commands ("{service}"). Pure."""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from difflib import get_close_matches

MAX_SECONDS = 24 * 3600
"""No duration in a pipeline (a wait, an analysis interval or its whole run, a timeout) is longer."""


def quoted(text: str) -> str:
    """A value as a message shows it: in double quotes, as it would be written in YAML or JSON."""
    return json.dumps(text, ensure_ascii=False)


DURATION = re.compile(r"^(?:(?P<h>[0-9]{1,5})h)?(?:(?P<m>[0-9]{1,5})m)?(?:(?P<s>[0-9]{1,5})s)?$")
DURATION_HINT = 'write a number of hours, minutes and seconds such as "90s", "30m", "2h" or "1h30m"'


def parse_duration(text: str) -> int:
    """Seconds of a duration such as "90s", "30m", "2h", "1h30m"; ValueError with the way to write one."""
    found = DURATION.match(text.strip()) if text.strip() else None
    if found is None:
        raise ValueError(f"{quoted(text)} is not a duration; {DURATION_HINT}")
    hours, minutes, seconds = (int(found.group(part) or 0) for part in "hms")
    return hours * 3600 + minutes * 60 + seconds


def duration_words(seconds: int) -> str:
    """A duration as people say it: "45 s", "30 min", "1 h 30 min"."""
    if seconds < 60:
        return f"{seconds} s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{secs} s" if secs else ""]
    return " ".join(part for part in parts if part)


# ---------------------------------------------------------------- conditions

NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
CONDITION = re.compile(
    rf"^\s*(?P<cmp><=|>=|==|!=|<|>)\s*"
    rf"(?:(?P<number>{NUMBER})|baseline(?:\s*(?P<op>[*+-])\s*(?P<operand>{NUMBER}))?)\s*$"
)
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
CONDITION_HINT = 'write "< 0.01" or "<= baseline * 1.1"'


@dataclass(frozen=True)
class Condition:
    """What a measurement must satisfy: `value <cmp> threshold`, or `value <cmp> baseline <op> operand`
    when `relative` (the baseline is the same query's value for the version live before the deploy)."""

    comparison: str
    threshold: float | None
    relative: bool
    op: str | None = None
    operand: float | None = None

    def limit(self, baseline: float | None) -> float | None:
        """The number a measurement is compared with; None when it depends on a baseline not known."""
        if not self.relative:
            return self.threshold
        if baseline is None:
            return None
        if self.op is None or self.operand is None:
            return baseline
        return {"*": baseline * self.operand, "+": baseline + self.operand, "-": baseline - self.operand}[
            self.op
        ]

    def holds(self, value: float, baseline: float | None = None) -> bool | None:
        """Whether `value` passes; None (inconclusive) when the value or the baseline it needs is not
        a number (no data, NaN)."""
        limit = self.limit(baseline)
        if limit is None or math.isnan(value) or math.isnan(limit):
            return None
        return COMPARISONS[self.comparison](value, limit)


def parse_condition(text: str) -> Condition:
    """A condition such as "< 0.01", "<= 250" or "<= baseline * 1.1"; ValueError saying how to write one."""
    found = CONDITION.match(text)
    if found is None:
        raise ValueError(f"{quoted(text)} is not a comparison; {CONDITION_HINT}")
    numbers = [found.group("number"), found.group("operand")]
    if any(number is not None and not math.isfinite(float(number)) for number in numbers):
        raise ValueError(f"{quoted(text)} holds a number too large to compare with")
    if found.group("number") is not None:
        return Condition(found.group("cmp"), float(found.group("number")), relative=False)
    operand = found.group("operand")
    return Condition(
        found.group("cmp"),
        None,
        relative=True,
        op=found.group("op"),
        operand=float(operand) if operand is not None else None,
    )


# ---------------------------------------------------------------- placeholders

PLACEHOLDERS = ("service", "env", "version", "baseline_version")
"""What a query or a command may name in braces; the orchestrator fills them in for each deploy."""
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
DOUBLED = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def check_placeholders(text: str) -> list[str]:
    """The placeholders `text` names (in order, once each); ValueError naming the first unknown one.

    A PromQL label matcher (`{code=~"5.."}`) is never taken for one: a placeholder is a bare name in
    braces. `{{service}}` (the graph panels' spelling) is refused with the right spelling."""
    doubled = DOUBLED.search(text)
    if doubled:
        raise ValueError(
            f"{doubled.group(0)} uses double braces; pipeline queries and commands write "
            f"{{{doubled.group(1)}}}"
        )
    named: list[str] = []
    for name in PLACEHOLDER.findall(text):
        if name not in PLACEHOLDERS:
            near = get_close_matches(name, PLACEHOLDERS, n=1, cutoff=0.5) or [
                known for known in PLACEHOLDERS if name.startswith(known) or known.startswith(name)
            ]
            hint = f"did you mean {{{near[0]}}}? " if near else ""
            known = ", ".join(f"{{{known}}}" for known in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{name}}}; {hint}the placeholders are {known}")
        if name not in named:
            named.append(name)
    return named


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """`text` with each placeholder replaced by its value (the orchestrator's side of check_placeholders).
    A placeholder without a value is left as written."""
    return PLACEHOLDER.sub(lambda found: values.get(found.group(1), found.group(0)), text)
