"""The app starts on each dialect and answers its start page and OpenAPI document."""

from fastapi.testclient import TestClient


def test_home_and_openapi(client: TestClient) -> None:
    assert client.get("/").status_code == 200
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/services" in spec["paths"]
