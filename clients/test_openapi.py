"""The OpenAPI document the server serves is valid by a third-party validator
(openapi-spec-validator), and describes every endpoint the libraries here called."""

import requests
from openapi_spec_validator import validate


def test_the_served_document_is_valid_openapi(server):
    response = requests.get(f"{server.api}/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.")
    validate(document)  # raises on any violation of the OpenAPI schema
    assert {"/v2/me", "/v2/rooms/{room_id}/messages", "/v2/sync", "/healthz"} <= set(document["paths"])
