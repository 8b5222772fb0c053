"""The OpenAPI 3.1 description of the token API, served at /api/schema/ (docs/api.md).

Written by hand beside the views in api.py; tests/annotate/test_openapi.py checks that every
API route is described and that real answers match the response schemas.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "bad input: what is wrong, and where",
        401: "no valid API token",
        403: "your role in the project is too low",
        404: "no such project (or not yours), job or route",
        409: "the task has no trained model yet",
        429: "too many requests or failed authentications (see Retry-After)",
        503: "the active model version has no ONNX export (the export's error)",
    }
    return {
        str(code): {
            "description": words[code],
            "content": {"application/json": {"schema": ERROR}},
        }
        for code in codes
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def schema() -> dict[str, Any]:
    """The whole document."""
    slug = {
        "name": "slug",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    turn_properties: dict[str, Any] = {
        "speaker": {"type": "string"},
        "text": {
            "type": "string",
            "minLength": 1,
            "maxLength": settings.PARLEY_IMPORT_MAX_UTTERANCE_CHARS,
        },
    }
    turn = {"type": "object", "required": ["text"], "properties": turn_properties}
    utterance = {
        "type": "object",
        "required": ["text"],
        "properties": {
            **turn_properties,
            "context": {
                "type": "array",
                "items": turn,
                "description": "previous turns, oldest first",
            },
        },
    }
    probabilities = {"type": "object", "additionalProperties": {"type": "number"}}
    prediction_properties: dict[str, Any] = {
        "label": {"type": "string"},
        "probabilities": probabilities,
    }
    prediction = {
        "type": "object",
        "required": ["label", "probabilities"],
        "properties": prediction_properties,
    }
    common = {
        "model_version": {"type": "integer"},
        "labels": {"type": "array", "items": {"type": "string"}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Parley API",
            "version": "1",
            "description": "Token API of Parley (docs/api.md). "
            "Authorization: Bearer <token> (manage.py create_api_token).",
        },
        "security": [{"token": []}],
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "fields": {"type": "object"},
                    },
                },
                "ImportJob": {
                    "type": "object",
                    "required": ["id", "project", "status", "url"],
                    "properties": {
                        "id": {"type": "integer"},
                        "project": {"type": "string"},
                        "file": {"type": "string"},
                        "status": {
                            "enum": ["queued", "running", "succeeded", "failed"]
                        },
                        "progress": {"type": "number", "minimum": 0, "maximum": 1},
                        "created": {"type": "integer"},
                        "updated": {"type": "integer"},
                        "skipped": {"type": "integer"},
                        "utterances": {"type": "integer"},
                        "error": {"type": "string"},
                        "url": {"type": "string"},
                    },
                },
            },
        },
        "paths": {
            "/api/projects/": {
                "get": {
                    "summary": "Your projects and your role in each",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["projects"],
                                "properties": {
                                    "projects": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["slug", "name", "role"],
                                            "properties": {
                                                "slug": {"type": "string"},
                                                "name": {"type": "string"},
                                                "role": {
                                                    "enum": [
                                                        "annotator",
                                                        "lead",
                                                        "admin",
                                                    ]
                                                },
                                                "dialogues": {"type": "integer"},
                                            },
                                        },
                                    }
                                },
                            },
                            "the projects",
                        ),
                        **_errors(401, 429),
                    },
                }
            },
            "/api/projects/{slug}/imports/": {
                "post": {
                    "summary": "Import a transcript file (admins); runs on a worker",
                    "parameters": [slug],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file"],
                                    "properties": {
                                        "file": {"type": "string", "format": "binary"},
                                        "format": {"enum": ["jsonl", "csv"]},
                                        "update": {"type": "boolean"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json(
                            {"$ref": "#/components/schemas/ImportJob"},
                            "queued; Location: the job",
                        ),
                        **_errors(400, 401, 403, 404, 429),
                    },
                }
            },
            "/api/imports/{pk}/": {
                "get": {
                    "summary": "An import job's status, progress, counts and error",
                    "parameters": [
                        {
                            "name": "pk",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": _json(
                            {"$ref": "#/components/schemas/ImportJob"}, "the job"
                        ),
                        **_errors(401, 403, 404, 429),
                    },
                }
            },
            "/api/projects/{slug}/export.{fmt}": {
                "get": {
                    "summary": "The corrected corpus (leads)",
                    "parameters": [
                        slug,
                        {
                            "name": "fmt",
                            "in": "path",
                            "required": True,
                            "schema": {"enum": ["jsonl", "csv"]},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "the corpus, streamed",
                            "content": {
                                "application/x-ndjson": {},
                                "text/csv": {},
                            },
                        },
                        **_errors(401, 403, 404, 429),
                    },
                }
            },
            "/api/projects/{slug}/tasks/{task}/predict": {
                "post": {
                    "summary": "The task's active student on one utterance or a batch",
                    "parameters": [
                        slug,
                        {
                            "name": "task",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        utterance,
                                        {
                                            "type": "object",
                                            "required": ["utterances"],
                                            "properties": {
                                                "utterances": {
                                                    "type": "array",
                                                    "items": utterance,
                                                    "minItems": 1,
                                                    "maxItems": settings.PARLEY_PREDICT_MAX_BATCH,
                                                }
                                            },
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "oneOf": [
                                    {
                                        "type": "object",
                                        "required": [
                                            "model_version",
                                            "labels",
                                            "label",
                                            "probabilities",
                                        ],
                                        "properties": {
                                            **common,
                                            **prediction_properties,
                                        },
                                    },
                                    {
                                        "type": "object",
                                        "required": [
                                            "model_version",
                                            "labels",
                                            "predictions",
                                        ],
                                        "properties": {
                                            **common,
                                            "predictions": {
                                                "type": "array",
                                                "items": prediction,
                                            },
                                        },
                                    },
                                ]
                            },
                            "one prediction, or one per utterance in order",
                        ),
                        **_errors(400, 401, 404, 409, 429, 503),
                    },
                }
            },
            "/api/schema/": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                }
            },
        },
    }
