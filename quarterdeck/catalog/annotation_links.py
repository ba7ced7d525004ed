"""Well-known annotations as links out of a service page, the way Backstage plugins read them: the rules
that ship with Quarterdeck, merged with QD_ANNOTATION_LINKS, and the pure function that applies them.

A value becomes a link only when it has the shape its key expects (the rule's `pattern`, else parts of
letters, digits, `.`, `_` and `-` separated by `/`) and the URL made from it is http(s) on the host the
rule writes out: each `/`-separated part is percent-encoded before it is put into the template, so a
value can add to the path but never change where the link goes. A rule whose template is one
placeholder alone takes a whole URL from the value, refused unless it is plain http(s) on a host name
of ASCII letters, digits, `.` and `-` (no user name, no look-alike characters), and on one of the rule's
`hosts` when it has some. Anything else is shown as text with the reason; a secret (a PagerDuty
integration key) is never linked and never shown whole.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from quarterdeck.catalog.schemas import AnnotationLink
from quarterdeck.config import (
    LINK_HOST,
    LINK_PART,
    AnnotationLinkRule,
    link_placeholders,
    whole_url_placeholder,
)

__all__ = ["DEFAULT_RULES", "MAX_VALUE", "link_for", "links_for", "mask", "rules_from"]

MAX_VALUE = 2048
"""Longer values are never links (a URL that long is no link a person follows)."""
SHOWN = 200
"""Characters of a value an answer repeats; the whole value stays in the answer's `annotations`."""
INHERITED = ("label", "pattern", "shape", "hosts", "secret")
"""What a configured rule for a default key keeps from the default when it does not say."""

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
_PAIR = f"{_SEGMENT}/{_SEGMENT}"
_URL_LOCATION = r"url:(?P<url>.+)"
GENERIC = re.compile(f"{_SEGMENT}(?:/{_SEGMENT}){{0,31}}")
"""The shape a value must have for a configured rule without a pattern; a URL taken whole from a value
needs no shape (ANYTHING): it is checked as a URL instead."""
ANYTHING = re.compile(".+")
HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
NO_ADDRESS = "no address is configured for this key (QD_ANNOTATION_LINKS)"

DEFAULT_RULES: dict[str, AnnotationLinkRule] = {
    "github.com/project-slug": AnnotationLinkRule(
        label="GitHub repository", url="https://github.com/{value}", pattern=_PAIR, shape="owner/repository"
    ),
    "github.com/team-slug": AnnotationLinkRule(
        label="GitHub team", url="https://github.com/orgs/{0}/teams/{1}", pattern=_PAIR, shape="org/team"
    ),
    "gitlab.com/project-slug": AnnotationLinkRule(
        label="GitLab project",
        url="https://gitlab.com/{value}",
        pattern=f"{_SEGMENT}(?:/{_SEGMENT}){{1,20}}",
        shape="group/project (subgroups allowed)",
    ),
    # GitLab answers /projects/:id with a redirect to the project (Projects::RedirectController).
    "gitlab.com/project-id": AnnotationLinkRule(
        label="GitLab project",
        url="https://gitlab.com/projects/{value}",
        pattern="[0-9]{1,20}",
        shape="a number",
    ),
    "pagerduty.com/service-id": AnnotationLinkRule(
        label="PagerDuty service",
        url="https://app.pagerduty.com/service-directory/{value}",
        pattern="[A-Z0-9]{2,32}",
        shape="a PagerDuty service ID such as PABC123",
    ),
    "pagerduty.com/integration-key": AnnotationLinkRule(label="PagerDuty integration key", secret=True),
    "sentry.io/project-slug": AnnotationLinkRule(
        label="Sentry project",
        url="https://sentry.io/organizations/{0}/projects/{1}/",
        pattern=_PAIR,
        shape="organization/project",
    ),
    "grafana/overview-dashboard": AnnotationLinkRule(
        label="Grafana dashboard", url="{value}", shape="the dashboard's http(s) URL"
    ),
    "datadoghq.com/dashboard-url": AnnotationLinkRule(
        label="Datadog dashboard",
        url="{value}",
        hosts=("datadoghq.com", "datadoghq.eu", "ddog-gov.com"),
        shape="a Datadog dashboard URL",
    ),
    "datadoghq.com/service-name": AnnotationLinkRule(
        label="Datadog service",
        url="https://app.datadoghq.com/apm/services/{value}",
        pattern="[A-Za-z0-9][A-Za-z0-9_.-]{0,199}",
        shape="a Datadog service name",
    ),
    "backstage.io/source-location": AnnotationLinkRule(
        label="Source code", url="{url}", pattern=_URL_LOCATION, shape="url:<http(s) URL>"
    ),
    "backstage.io/view-url": AnnotationLinkRule(
        label="View descriptor", url="{value}", shape="an http(s) URL"
    ),
    "backstage.io/edit-url": AnnotationLinkRule(
        label="Edit descriptor", url="{value}", shape="an http(s) URL"
    ),
    # The SonarQube plugin's default instance is SonarCloud; its project page is dashboard?id=KEY.
    "sonarqube.org/project-key": AnnotationLinkRule(
        label="SonarQube project",
        url="https://sonarcloud.io/dashboard?id={value}",
        pattern="[A-Za-z0-9_.:-]{1,400}",
        shape="a project key (an instance/ prefix needs a configured address)",
    ),
    "circleci.com/project-slug": AnnotationLinkRule(
        label="CircleCI project",
        url="https://app.circleci.com/pipelines/{value}",
        pattern=f"(?:github|bitbucket)/{_PAIR}",
        shape="github/owner/repository or bitbucket/owner/repository",
    ),
    "buildkite.com/project-slug": AnnotationLinkRule(
        label="Buildkite pipeline",
        url="https://buildkite.com/{value}",
        pattern=_PAIR,
        shape="organization/pipeline",
    ),
    "quay.io/repository-slug": AnnotationLinkRule(
        label="Quay repository",
        url="https://quay.io/repository/{value}",
        pattern=_PAIR,
        shape="namespace/repository",
    ),
    "lighthouse.com/website-url": AnnotationLinkRule(label="Website", url="{value}", shape="an http(s) URL"),
    "endoflife.date/products": AnnotationLinkRule(
        label="End-of-life dates",
        url="https://endoflife.date/{product}",
        pattern="(?P<product>[a-z0-9][a-z0-9.-]{0,99})(?:@[A-Za-z0-9._-]{1,50})?",
        shape="one product, optionally @cycle, such as ruby@3.3",
    ),
    # Known keys whose tools live at an address only the organisation knows: text until configured.
    "jenkins.io/job-full-name": AnnotationLinkRule(
        label="Jenkins job", pattern=f"{_SEGMENT}(?:/{_SEGMENT}){{0,20}}", shape="folder/job"
    ),
    "argocd/app-name": AnnotationLinkRule(
        label="Argo CD application",
        pattern="[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?",
        shape="an Argo CD application name",
    ),
    "opsgenie.com/component-selector": AnnotationLinkRule(
        label="Opsgenie alerts", pattern=".{1,500}", shape="an Opsgenie alert query"
    ),
}


def rules_from(configured: Mapping[str, AnnotationLinkRule | None]) -> dict[str, AnnotationLinkRule]:
    """The defaults with QD_ANNOTATION_LINKS over them: a new key is added, a default key's rule takes
    what the configured one says and keeps the rest (`INHERITED`), None drops a default."""
    rules = dict(DEFAULT_RULES)
    for key, rule in configured.items():
        default = rules.get(key)
        if rule is None:
            rules.pop(key, None)
        elif default is None:
            rules[key] = rule
        else:
            kept = {name: getattr(default, name) for name in INHERITED if name not in rule.model_fields_set}
            rules[key] = rule.model_copy(update=kept)
    return rules


def links_for(
    annotations: Mapping[str, str], rules: Mapping[str, AnnotationLinkRule]
) -> list[AnnotationLink]:
    """One entry per annotation whose key has a rule, by label then key (the stored JSON of either
    database keeps no order of its own)."""
    found = [link_for(key, value, rules[key]) for key, value in annotations.items() if key in rules]
    return sorted(found, key=lambda link: (link.label.lower(), link.key))


def link_for(key: str, value: str, rule: AnnotationLinkRule) -> AnnotationLink:
    label = rule.label or key
    if rule.secret:
        reason = "a secret: hidden, never a link"
        return AnnotationLink(key=key, label=label, value=mask(value), reason=reason, masked=True)
    shown = value if len(value) <= SHOWN else value[:SHOWN] + "…"
    if rule.url is None:
        return AnnotationLink(key=key, label=label, value=shown, reason=NO_ADDRESS)
    try:
        url = _url_of(value, rule, rule.url)
    except NotALink as exc:
        return AnnotationLink(key=key, label=label, value=shown, reason=str(exc))
    return AnnotationLink(key=key, label=label, value=shown, url=url)


def mask(value: str) -> str:
    """A secret as the page shows it: its last 4 characters when they are at most a quarter of it."""
    return "••••" + value[-4:] if len(value) >= 16 else "••••"


class NotALink(ValueError):
    """Why a value is shown as text."""


def _url_of(value: str, rule: AnnotationLinkRule, template: str) -> str:
    if len(value) > MAX_VALUE:
        raise NotALink(f"longer than {MAX_VALUE} characters")
    if any(unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp") for ch in value):
        raise NotALink("has control or invisible characters")
    whole = whole_url_placeholder(template)
    match = re.fullmatch(rule.pattern or (ANYTHING if whole else GENERIC), value)
    if match is None:
        raise NotALink(f"expected {rule.shape}" if rule.shape else _generic_shape(rule))
    parts = value.split("/")
    if whole is not None:
        return _checked_url(_text_of(whole, value, parts, match), rule.hosts)
    if any(part in ("", ".", "..") for part in parts):
        raise NotALink("has an empty, '.' or '..' part")
    indexes = [int(name) for name, _spec in link_placeholders(template) if LINK_PART.fullmatch(name)]
    if indexes and len(parts) != max(indexes) + 1:
        wanted = max(indexes) + 1
        raise NotALink(
            f"expected {rule.shape}" if rule.shape else f"expected {wanted} parts separated by '/'"
        )
    built = []
    for literal, name, spec, _conversion in string.Formatter().parse(template):
        built.append(literal)
        if name is not None:
            built.append(_encoded(name, spec or "/", parts, match))
    return _same_host("".join(built), template)


def _generic_shape(rule: AnnotationLinkRule) -> str:
    if rule.pattern:
        return f"does not match {rule.pattern}"
    return "expected parts of letters, digits, '.', '_' and '-' separated by '/'"


def _text_of(name: str, value: str, parts: list[str], match: re.Match[str]) -> str:
    """What a placeholder stands for, before encoding: the value, one of its parts, or a group."""
    if name == "value":
        return value
    if LINK_PART.fullmatch(name):
        if int(name) >= len(parts):
            raise NotALink(f"has {len(parts)} parts separated by '/', the link needs {int(name) + 1}")
        return parts[int(name)]
    found = match.group(name)
    if not found:
        raise NotALink(f"has no {name}")
    return found


def _encoded(name: str, join: str, parts: list[str], match: re.Match[str]) -> str:
    """A placeholder's text with every `/`-separated part percent-encoded: nothing is left that could
    end the path, start a query, a fragment, a user name or a host, or climb with `..`."""
    if name == "value":
        return join.join(quote(part, safe="") for part in parts)
    pieces = _text_of(name, "/".join(parts), parts, match).split("/")
    if any(piece in ("", ".", "..") for piece in pieces):
        raise NotALink("has an empty, '.' or '..' part")
    return "/".join(quote(piece, safe="") for piece in pieces)


def _same_host(url: str, template: str) -> str:
    """The URL, checked once more as a browser would read it: http(s), on the template's own host."""
    written = urlsplit(template.split("{", 1)[0])
    made = urlsplit(url)
    if (made.scheme, made.netloc) != (written.scheme, written.netloc) or not LINK_HOST.fullmatch(made.netloc):
        raise NotALink("would leave the host of its link template")
    return url


def _checked_url(url: str, hosts: tuple[str, ...]) -> str:
    """A whole URL from a value: plain http(s) on a host name, nothing a browser reads another way."""
    if any(not ("!" <= ch <= "~") or ch == "\\" for ch in url):
        raise NotALink("has spaces, backslashes or characters outside printable ASCII")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise NotALink("not an http(s) URL")
    if "@" in parts.netloc:
        raise NotALink("has a user name in its address")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise NotALink("has a port that is not a number from 0 to 65535") from None
    host = parts.hostname or ""
    if not HOST_NAME.fullmatch(host):
        raise NotALink(f"host {host!r} is not a host name of letters, digits, '.' and '-'")
    if hosts and not any(host == allowed or host.endswith("." + allowed) for allowed in hosts):
        raise NotALink(f"host {host} is not one of {', '.join(hosts)}")
    return url
