"""/api/schema/ describes every API route, and the real answers match it."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern

from annotate import services
from annotate.urls import api_routes
from tests.annotate.test_predict_api import trained  # noqa: F401
from tests.annotate.test_training_run import act, learner_settings  # noqa: F401
from tests.learner.conftest import tiny_backbone  # noqa: F401


@pytest.fixture
def document(client, db):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def token(admin_alice):
    _, key = services.api_token_create(user=admin_alice, name="schema")
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def check(document, path, method, response):
    """Validate a real answer against the schema of its path, method and status."""
    spec = document["paths"][path][method]["responses"][str(response.status_code)]
    schema = spec["content"]["application/json"]["schema"]
    jsonschema.validate(
        response.json(),
        {**schema, "components": document["components"]},
        cls=jsonschema.Draft202012Validator,
    )


def test_every_api_route_is_described(document):
    described = set(document["paths"])
    for route in api_routes:
        assert isinstance(route, URLPattern)
        path = "/api/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(route.pattern))
        assert path in described, path
    assert document["openapi"].startswith("3.1")


def test_answers_match_the_schema(client, document, token, project):
    check(document, "/api/projects/", "get", client.get("/api/projects/", **token))
    check(document, "/api/projects/", "get", client.get("/api/projects/"))  # 401
    upload = SimpleUploadedFile(
        "a.jsonl", b'{"id": "x", "turns": [{"speaker": "A", "text": "hi"}]}\n'
    )
    created = client.post("/api/projects/support/imports/", {"file": upload}, **token)
    assert created.status_code == 202
    check(document, "/api/projects/{slug}/imports/", "post", created)
    bad = client.post("/api/projects/support/imports/", {}, **token)
    check(document, "/api/projects/{slug}/imports/", "post", bad)
    detail = client.get(created.json()["url"], **token)
    check(document, "/api/imports/{pk}/", "get", detail)


def test_predictions_match_the_schema(client, document, token, trained):  # noqa: F811
    path = "/api/projects/{slug}/tasks/{task}/predict"
    url = "/api/projects/support/tasks/act/predict"

    def post(body):
        return client.post(
            url, data=json.dumps(body), content_type="application/json", **token
        )

    for body in (
        {"text": "where is it?"},
        {"utterances": [{"text": "a"}, {"text": "b", "context": [{"text": "a"}]}]},
        {"text": ""},
    ):
        response = post(body)
        check(document, path, "post", response)
    request_schema = document["paths"][path]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    jsonschema.validate({"text": "hi"}, request_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"text": ""}, request_schema)
