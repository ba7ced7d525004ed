"""The app starts on each dialect and answers its start page and OpenAPI document."""

from fastapi.testclient import TestClient


def test_home_and_openapi(client: TestClient) -> None:
    assert client.get("/").status_code == 200
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/services" in spec["paths"]


def test_api_docs_use_vendored_assets(client: TestClient) -> None:
    page = client.get("/api/v1/docs").text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_metrics_count_requests_by_route(client: TestClient) -> None:
    client.get("/api/v1/services")
    metrics = client.get("/metrics").text
    assert 'quarterdeck_http_requests_total{method="GET",route="/api/v1/services",status="200"}' in metrics
