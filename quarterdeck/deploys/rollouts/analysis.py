"""The canary verdict: one analysis interval's measurements judged against their conditions, the tally
over intervals, what the step does next, and the one sentence that says why it failed. Pure."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from quarterdeck.deploys.pipelines import parse_condition

Verdict = Literal["pass", "fail", "inconclusive"]
Next = Literal["continue", "succeed", "fail", "pause"]
KEPT_INTERVALS = 100
"""Intervals a step's detail keeps (the counts cover them all)."""
NEGATION = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}


@dataclass(frozen=True)
class Measurement:
    """One query's value in one interval, the baseline's when the condition needs it, what it was
    compared with, and the verdict. `note` says why a measurement is inconclusive."""

    query: str
    condition: str
    value: float | None
    baseline: float | None
    limit: float | None
    verdict: Verdict
    note: str = ""


def judge(
    query: str, condition: str, value: float | None, baseline: float | None, *, note: str = ""
) -> Measurement:
    """`value` against `condition` ("< 0.01", "<= baseline * 1.2"); no value, NaN or a missing
    baseline makes it inconclusive."""
    parsed = parse_condition(condition)
    limit = parsed.limit(baseline)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Measurement(query, condition, None, baseline, limit, "inconclusive", note or "no data")
    if limit is None:
        why = note or "no baseline: nothing was live before, or it has no data"
        return Measurement(query, condition, value, baseline, None, "inconclusive", why)
    held = parsed.holds(value, baseline)
    if held is None:
        return Measurement(query, condition, value, baseline, limit, "inconclusive", note or "not a number")
    return Measurement(query, condition, value, baseline, limit, "pass" if held else "fail", note)


def interval_verdict(results: list[Measurement]) -> Verdict:
    """An interval fails when any query fails; else it is inconclusive when any query has no data."""
    if any(result.verdict == "fail" for result in results):
        return "fail"
    if any(result.verdict == "inconclusive" for result in results):
        return "inconclusive"
    return "pass"


def record_interval(
    detail: dict[str, Any], results: list[Measurement], *, at: datetime
) -> tuple[dict[str, Any], Verdict]:
    """The step's detail with one more interval counted and kept (the newest KEPT_INTERVALS)."""
    verdict = interval_verdict(results)
    measured = int(detail.get("measured", 0)) + 1
    interval = {
        "n": measured,
        "at": at.isoformat(),
        "verdict": verdict,
        "results": [asdict(result) for result in results],
    }
    kept = [*detail.get("intervals", []), interval][-KEPT_INTERVALS:]
    updated = {
        **detail,
        "measured": measured,
        "failures": int(detail.get("failures", 0)) + (verdict == "fail"),
        "inconclusive": int(detail.get("inconclusive", 0)) + (verdict == "inconclusive"),
        "intervals": kept,
    }
    return updated, verdict


def next_move(*, count: int, failure_limit: int, inconclusive_limit: int, detail: dict[str, Any]) -> Next:
    """What an analysis does after an interval: fail past its failure limit, pause for a person past
    its inconclusive limit, succeed once every measurement is taken, else measure again."""
    if int(detail.get("failures", 0)) > failure_limit:
        return "fail"
    if int(detail.get("inconclusive", 0)) > inconclusive_limit:
        return "pause"
    if int(detail.get("measured", 0)) >= count:
        return "succeed"
    return "continue"


def _number(value: float | None) -> str:
    return "no data" if value is None else f"{value:.4g}"


def _worst(detail: dict[str, Any], verdict: Verdict) -> tuple[str, int, dict[str, Any], str] | None:
    """The query with the most measurements of `verdict`, how many, its last such one and when."""
    counts: dict[str, int] = {}
    last: dict[str, tuple[dict[str, Any], str]] = {}
    for interval in detail.get("intervals", []):
        for result in interval["results"]:
            if result["verdict"] == verdict:
                counts[result["query"]] = counts.get(result["query"], 0) + 1
                last[result["query"]] = (result, interval["at"])
    if not counts:
        return None
    query = max(counts, key=lambda name: (counts[name], name))
    result, at = last[query]
    return query, counts[query], result, at


def failure_sentence(detail: dict[str, Any], *, count: int, name: str | None = None) -> str:
    """ "Analysis error-rate failed 3 of 5 intervals: 0.31 >= 0.01 at 14:02." """
    where = f" ({name})" if name else ""
    worst = _worst(detail, "fail")
    if worst is None:
        return f"Analysis{where} failed {detail.get('failures', 0)} of {count} intervals."
    query, failed, result, at = worst
    negated = NEGATION[parse_condition(result["condition"]).comparison]
    limit = _number(result["limit"])
    if result["baseline"] is not None:
        limit += f" (baseline {_number(result['baseline'])})"
    when = datetime.fromisoformat(at).strftime("%H:%M")
    return (
        f"Analysis {query}{where} failed {failed} of {count} intervals: "
        f"{_number(result['value'])} {negated} {limit} at {when}."
    )


def inconclusive_sentence(detail: dict[str, Any], *, count: int, name: str | None = None) -> str:
    where = f" ({name})" if name else ""
    worst = _worst(detail, "inconclusive")
    if worst is None:
        return f"Analysis{where} had {detail.get('inconclusive', 0)} of {count} intervals without data."
    query, times, result, _at = worst
    return (
        f"Analysis {query}{where} had no verdict in {times} of {count} intervals ({result['note']}): "
        "paused for a person to decide."
    )
