"""GET /api/v1/event-types: every type Sapien emits with the JSON Schema of its body and an example that
validates against it; the same schemas as components of the OpenAPI document."""

import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from jsonschema import FormatChecker
from jsonschema.validators import validator_for

from sapien.events.catalog import EVENT_TYPES
from sapien.events.schemas import event_schema, strict
from sapien.events.schemas.openapi import component_name, openapi_schema

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def seed_000_schema() -> dict:
    seeds = sorted((ROOT.parent / "shared" / "seeds").glob("000_*.txt"))
    text = seeds[0].read_text() if seeds else ""
    block = re.search(r"### Full Schema Definition\s*```json\n(.*?)```", text, re.DOTALL)
    if block is None:
        pytest.skip("seed 000 is not beside the project")
    return json.loads(block.group(1))


def test_the_list_holds_every_type_in_catalog_order_on_one_page(make_api, organization) -> None:
    api = make_api(organization, "events:read")

    response = api.get("/api/v1/event-types")

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None and body["previous"] is None
    assert [entry["type"] for entry in body["results"]] == list(EVENT_TYPES)
    assert {tuple(sorted(entry)) for entry in body["results"]} == {
        ("counts_against_quota", "description", "example", "family", "produced_by", "schema", "type", "version")
    }


def test_one_type_reads_with_its_schema_example_and_producers(make_api, organization) -> None:
    api = make_api(organization, "events:read")

    entry = api.get("/api/v1/event-types/person.updated").json()

    assert entry["type"] == "person.updated"
    assert entry["description"] == EVENT_TYPES["person.updated"]
    assert entry["family"] == "person.*"
    assert entry["version"] == "1.0"
    assert entry["counts_against_quota"] is True
    assert entry["produced_by"] == {"scopes": ["entities:write"], "sources": ["api", "admin"]}
    assert entry["schema"] == event_schema("person.updated")
    assert entry["schema"]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert entry["example"]["type"] == "person.updated"
    assert entry["example"]["changes"] == {"name": {"old": "John Smith", "new": "John Doe"}}
    assert api.get("/api/v1/event-types/system.ping/").json()["counts_against_quota"] is False


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_every_example_validates_against_its_schema_with_formats_checked(event_type, make_api, organization) -> None:
    entry = make_api(organization, "events:read").get(f"/api/v1/event-types/{event_type}").json()
    validator = validator_for(entry["schema"])
    validator.check_schema(entry["schema"])

    errors = list(validator(strict(entry["schema"]), format_checker=FormatChecker()).iter_errors(entry["example"]))

    assert [error.message for error in errors] == []


def test_user_availability_update_is_seed_000s_schema_exactly(make_api, organization) -> None:
    entry = make_api(organization, "events:read").get("/api/v1/event-types/user.availability.update").json()

    assert entry["schema"] == seed_000_schema()
    assert entry["schema"] == json.loads((ROOT / "docs/schemas/user-availability-update.schema.json").read_text())
    assert entry["version"] == "1.0.0"
    assert entry["example"]["event_type"] == "user.availability.update"


@pytest.mark.parametrize("unknown", ["person.renamed", "person.*", "*", "PERSON.CREATED", "person.created.x", "%20"])
def test_an_unknown_type_is_a_404_naming_it(unknown, make_api, organization) -> None:
    response = make_api(organization, "events:read").get(f"/api/v1/event-types/{unknown}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "GET /api/v1/event-types lists them" in response.json()["error"]["message"]


def test_the_catalog_needs_a_token_with_events_read(make_api, organization, client) -> None:
    assert client.get("/api/v1/event-types").status_code == 401
    refused = make_api(organization, "entities:read").get("/api/v1/event-types")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert make_api(organization, "events:subscribe").get("/api/v1/event-types/system.ping").status_code == 403


def test_the_catalog_is_read_only(make_api, organization) -> None:
    api = make_api(organization)

    assert api.post("/api/v1/event-types", {"type": "x.y"}, format="json").status_code == 405
    assert api.delete("/api/v1/event-types/system.ping").status_code == 405
    assert api.get("/api/v1/event-types/system.ping").json()["type"] == "system.ping"


def test_the_openapi_document_types_every_event_body(client) -> None:
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = document["components"]["schemas"]

    for event_type in EVENT_TYPES:
        assert components[component_name(event_type)] == openapi_schema(event_schema(event_type))
    assert components["WebhookEvent"]["oneOf"] == [
        {"$ref": f"#/components/schemas/{component_name(event_type)}"} for event_type in EVENT_TYPES
    ]
    entry = document["paths"]["/api/v1/event-types/{type}/"]["get"]["responses"]["200"]
    reference = entry["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert components[reference]["properties"]["example"]["allOf"][0] == {"$ref": "#/components/schemas/WebhookEvent"}
    listed = document["paths"]["/api/v1/event-types/"]["get"]["responses"]["200"]["content"]["application/json"]
    page = components[listed["schema"]["$ref"].rsplit("/", 1)[1]]
    assert page["required"] == ["next", "previous", "results"]
    assert page["properties"]["results"]["items"] == {"$ref": f"#/components/schemas/{reference}"}
    test_send = document["paths"]["/api/v1/subscriptions/{id}/test/"]["post"]["requestBody"]["content"]
    sent = components[test_send["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    named = sent["properties"]["type"]  # an enum component, by the enum postprocessing hook
    enum = components[(named.get("$ref") or named["allOf"][0]["$ref"]).rsplit("/", 1)[1]]["enum"]
    assert set(enum) == set(EVENT_TYPES)


def test_the_openapi_dialect_keeps_each_schemas_meaning() -> None:
    seed = openapi_schema(event_schema("user.availability.update"))
    enveloped = openapi_schema(event_schema("availability.changed"))

    assert "$schema" not in seed and "$schema" not in enveloped
    assert seed["properties"]["event_type"] == {
        "type": "string", "enum": ["user.availability.update"], "description": "Event type identifier"
    }  # fmt: skip
    # seed 000 types previous_status as a string: null, listed in its enum, is refused all the same
    assert None not in seed["properties"]["data"]["properties"]["availability"]["properties"]["previous_status"]["enum"]
    data = enveloped["properties"]["data"]["properties"]
    assert data["profile_id"] == {"type": "string", "format": "uuid", "nullable": True}
    assert data["previous_status"]["nullable"] is True and data["previous_status"]["type"] == "string"
    assert enveloped["properties"]["version"] == {"type": "string", "enum": ["1.0"]}


def test_the_openapi_document_with_the_event_components_is_valid_openapi(tmp_path) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))

    assert "WebhookEvent:" in (tmp_path / "schema.yaml").read_text()
