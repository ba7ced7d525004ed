"""Helpers the API test modules share: reading JSON error answers the same way everywhere."""

from __future__ import annotations

from typing import Any

from httpx import Response

Json = dict[str, Any]


def error_of(response: Response, status: int, code: str) -> Json:
    """The `error` object of a JSON error answer, after checking its status, code and shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    error: Json = body["error"]
    assert sorted(error) == ["code", "details", "message"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


def problem(response: Response) -> tuple[int, str | None, list[str]]:
    """(status, error code, fields named) of an answer, to compare many bad requests at once."""
    if response.headers.get("content-type") != "application/json" or "error" not in response.json():
        return response.status_code, None, []
    error = response.json()["error"]
    assert sorted(error) == ["code", "details", "message"], error
    details = error["details"] if isinstance(error["details"], list) else []
    return response.status_code, error["code"], [detail["field"] for detail in details]


def team_brief(slug: str, name: str, email: str | None = None, chat: str | None = None) -> Json:
    return {"slug": slug, "name": name, "email": email, "chat_channel": chat, "url": f"/teams/{slug}"}
