"""PromQL templating: placeholder filling and escaping, template checks, ranges, steps and rate windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quarterdeck.errors import Invalid
from quarterdeck.observability.promql import (
    DEFAULT_PANELS,
    PLACEHOLDERS,
    choose_step,
    parse_range,
    placeholders_in,
    rate_window,
    render,
    validate_template,
)

RATE = 'sum(rate(http_requests_total{service="{{service}}"}[{{range}}]))'
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        # a plain value goes in unchanged
        ("checkout", 'sum(rate(http_requests_total{service="checkout"}[5m]))'),
        # the classic break-out: the quote is escaped, so `or vector(1)` stays part of the label value
        (
            '"} or vector(1) #',
            r'sum(rate(http_requests_total{service="\"} or vector(1) #"}[5m]))',
        ),
        # a backslash is doubled first, so it cannot swallow the escape of a following quote
        ('a\\"', r'sum(rate(http_requests_total{service="a\\\""}[5m]))'),
        # a raw newline would end the string for PromQL's lexer; it becomes \n
        ("a\nb", r'sum(rate(http_requests_total{service="a\nb"}[5m]))'),
        # other control characters are written as escapes too
        ("a\tb\x01", r'sum(rate(http_requests_total{service="a\tb\x01"}[5m]))'),
        # non-ASCII text is legal inside a PromQL string and is left alone
        ("café", 'sum(rate(http_requests_total{service="café"}[5m]))'),
        # braces and template markers in a value are just text: values are not re-rendered
        ("{{env}}", 'sum(rate(http_requests_total{service="{{env}}"}[5m]))'),
    ],
)
def test_render_keeps_label_values_inside_their_string(service: str, expected: str) -> None:
    assert render(RATE, {"service": service, "range": "5m"}) == expected


def test_render_fills_every_occurrence_and_allows_spaces_in_placeholders() -> None:
    template = 'x{service="{{ service }}", env="{{env}}"} / y{service="{{service}}"}'

    rendered = render(template, {"service": "api", "env": "prod"})

    assert rendered == 'x{service="api", env="prod"} / y{service="api"}'


def test_unknown_placeholder_names_placeholder_and_template() -> None:
    template = 'up{team="{{team}}"}'

    with pytest.raises(Invalid) as raised:
        render(template, {"service": "api"})

    assert raised.value.code == "observability.unknown_placeholder"
    assert "{{team}}" in raised.value.message
    assert template in raised.value.message
    assert raised.value.details == {"placeholder": "team", "template": template}


@pytest.mark.parametrize(
    ("template", "code"),
    [
        # a label placeholder outside quotes: escaping could not contain the value
        ("up{service={{service}}}", "observability.unquoted_placeholder"),
        # single quotes are a PromQL string too, but escaping is written for double quotes
        ("up{service='{{service}}'}", "observability.unquoted_placeholder"),
        # a raw string (backticks) has no escapes at all
        ("up{service=`{{service}}`}", "observability.unquoted_placeholder"),
        # an escaped quote does not end the string, so the next quote does, and the placeholder is outside
        (r'up{a="x\"", service={{service}}}', "observability.unquoted_placeholder"),
        # a typo'd placeholder is reported, not sent to Prometheus as is
        ('up{service="{{service}"}', "observability.bad_placeholder"),
        # a name Quarterdeck does not offer
        ('up{owner="{{owner}}"}', "observability.unknown_placeholder"),
    ],
)
def test_validate_template_rejects(template: str, code: str) -> None:
    with pytest.raises(Invalid) as raised:
        validate_template(template, set(PLACEHOLDERS))

    assert raised.value.code == code
    assert repr(template) in raised.value.message


@pytest.mark.parametrize(
    "template",
    [
        # the usual shape
        'sum(rate(http_requests_total{service="{{service}}", env="{{env}}"}[{{range}}]))',
        # a placeholder inside a regex matcher is still inside a double-quoted string
        'up{namespace=~"{{namespace}}|default"}',
        # `{{` in a comment is not a placeholder
        "up # {{ not a placeholder\n",
        # no placeholders at all
        "vector(1)",
    ],
)
def test_validate_template_accepts(template: str) -> None:
    validate_template(template, set(PLACEHOLDERS))


def test_placeholders_in_lists_names_once() -> None:
    assert placeholders_in(RATE + " / " + RATE) == {"service", "range"}


@pytest.mark.parametrize(
    "window",
    [
        # not a duration: would put arbitrary PromQL in the brackets
        "5m]) or vector(1",
        # a number without unit
        "300",
        # empty
        "",
    ],
)
def test_range_placeholder_takes_only_durations(window: str) -> None:
    with pytest.raises(Invalid) as raised:
        render(RATE, {"service": "api", "range": window})

    assert raised.value.code == "observability.bad_duration"


def test_default_panels_render_with_service_and_range_only() -> None:
    for panel in DEFAULT_PANELS:
        validate_template(panel.query, {"service", "range"})
        assert '"checkout"' in render(panel.query, {"service": "checkout", "range": "1m"})
    assert [p.key for p in DEFAULT_PANELS] == ["request_rate", "error_ratio", "latency_p50", "latency_p99"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),  # shortest offered range
        ("1h", timedelta(hours=1)),  # the default page
        ("6h", timedelta(hours=6)),
        ("24h", timedelta(days=1)),  # written in hours, as users say it
        ("7d", timedelta(days=7)),  # longest offered range
        (" 1h ", timedelta(hours=1)),  # surrounding space from a form field is ignored
    ],
)
def test_parse_range_accepts_offered_ranges(text: str, expected: timedelta) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2h",  # a valid Prometheus duration, but not one the page offers
        "1d",  # 24h is spelled 24h
        "60m",  # same length as 1h, still not an offered form
        "1H",  # case matters, as in Prometheus
        "",  # empty
        "15",  # no unit
    ],
)
def test_parse_range_rejects_anything_else(text: str) -> None:
    with pytest.raises(Invalid) as raised:
        parse_range(text)

    assert raised.value.code == "observability.bad_range"
    assert repr(text) in raised.value.message
    assert "15m, 1h, 6h, 24h, 7d" in raised.value.message


@pytest.mark.parametrize(
    ("span", "max_points", "expected"),
    [
        (timedelta(minutes=15), 240, 15.0),  # short ranges never go under the usual scrape interval
        (timedelta(hours=1), 240, 30.0),  # 15s would give 241 points (both ends count)
        (timedelta(hours=1), 241, 15.0),  # ... which fits when 241 are allowed
        (timedelta(hours=6), 240, 120.0),  # over 90 s needed, next nice step is 2m
        (timedelta(hours=24), 240, 600.0),  # over 360 s needed: 5m is too small, 10m
        (timedelta(days=7), 240, 3600.0),  # over 2520 s needed: 1h
        (timedelta(days=400), 240, 172800.0),  # past 1d, whole days: 1.67 d rounds up to 2d
        (timedelta(days=480), 240, 259200.0),  # exactly 2d needed gives 241 points, so 3d
        (timedelta(hours=1), 1, 7200.0),  # one point: the step must be longer than the range
    ],
)
def test_choose_step(span: timedelta, max_points: int, expected: float) -> None:
    assert choose_step(T0, T0 + span, max_points=max_points) == expected


@pytest.mark.parametrize(
    "span",
    [
        timedelta(0),  # an empty range
        timedelta(minutes=-5),  # end before start
    ],
)
def test_choose_step_rejects_empty_range(span: timedelta) -> None:
    with pytest.raises(Invalid) as raised:
        choose_step(T0, T0 + span)

    assert raised.value.code == "observability.empty_range"


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (1.0, "1m"),  # tiny steps still get a 1m window: several scrapes per point
        (15.0, "1m"),  # 4 x 15s is exactly the floor
        (22.5, "90s"),  # 90 s is not a whole number of minutes
        (30.0, "2m"),  # 4 x 30s
        (600.0, "40m"),  # 4 x 10m
        (900.0, "1h"),  # 4 x 15m, in the largest exact unit
        (21600.0, "1d"),  # 4 x 6h
        (15.1, "61s"),  # 60.4 s rounds up to whole seconds
    ],
)
def test_rate_window(step: float, expected: str) -> None:
    assert rate_window(step) == expected
