"""Person, Pet and Toy CRUD: validation, scopes, pagination and organization isolation."""

import json
import uuid

import pytest
from django.db.models.sql.compiler import SQLCompiler
from rest_framework import serializers
from rest_framework.test import APIClient

from sapien.core.auth import recent_tokens
from sapien.entities.models import Person, Pet, Toy
from sapien.entities.serializers import PersonSerializer
from sapien.events.models import Event

pytestmark = pytest.mark.django_db


def test_create_read_update_delete_a_person(api: APIClient) -> None:
    created = api.post(
        "/api/persons", {"name": "Ada Lovelace", "email": "ada@example.com", "attributes": {"vip": True}}, format="json"
    )
    assert created.status_code == 201
    person_id = created.json()["id"]
    assert created.json()["pets"] == []
    assert created.json()["status"] == "active"

    assert api.get(f"/api/persons/{person_id}").json()["name"] == "Ada Lovelace"
    patched = api.patch(f"/api/persons/{person_id}", {"status": "inactive"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["status"] == "inactive"
    replaced = api.put(f"/api/persons/{person_id}", {"name": "Ada King", "email": "ada@example.com"}, format="json")
    assert replaced.json()["name"] == "Ada King"

    assert api.delete(f"/api/persons/{person_id}").status_code == 204
    assert not Person.objects.filter(pk=person_id).exists()


def test_a_person_shows_their_pets_and_a_pet_its_toys(api: APIClient) -> None:
    person = api.post("/api/persons", {"name": "Ada"}, format="json").json()
    pet = api.post("/api/pets", {"name": "Buddy", "type": "dog", "owner": person["id"]}, format="json").json()
    toy = api.post("/api/toys", {"name": "Ball", "pet": pet["id"]}, format="json").json()

    assert api.get(f"/api/persons/{person['id']}").json()["pets"] == [{"id": pet["id"], "name": "Buddy", "type": "dog"}]
    assert api.get(f"/api/pets/{pet['id']}").json()["toys"] == [{"id": toy["id"], "name": "Ball"}]


def test_lists_are_paginated_and_filterable(api: APIClient) -> None:
    for index in range(5):
        api.post(
            "/api/persons", {"name": f"Person {index}", "status": "active" if index % 2 else "inactive"}, format="json"
        )

    page = api.get("/api/persons", {"page_size": 2}).json()
    assert set(page) == {"next", "previous", "results"}  # no count
    assert [person["name"] for person in page["results"]] == ["Person 4", "Person 3"]
    assert page["next"] is not None
    assert page["previous"] is None
    inactive = api.get("/api/persons", {"status": "inactive"}).json()
    assert [person["name"] for person in inactive["results"]] == ["Person 4", "Person 2", "Person 0"]
    assert [person["name"] for person in api.get("/api/persons", {"name": "person 3"}).json()["results"]] == [
        "Person 3"
    ]


def test_notes_take_one_mebibyte_of_text(api: APIClient) -> None:
    notes = "é" * (1024 * 1024)

    created = api.post("/api/persons", {"name": "Verbose", "notes": notes}, format="json")

    assert created.status_code == 201
    assert len(Person.objects.get(pk=created.json()["id"]).notes) == 1024 * 1024


def test_notes_over_one_mebibyte_are_refused(api: APIClient) -> None:
    response = api.post("/api/persons", {"name": "Verbose", "notes": "a" * (1024 * 1024 + 1)}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "notes" in response.json()["error"]["details"]
    assert Person.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "A", "email": "not-an-email"}, "email"),
        ({"name": "A", "status": "sleeping"}, "status"),
        ({"name": "A", "attributes": [1, 2]}, "attributes"),
        ({"name": {"first": "Ada"}}, "name"),
    ],
)
def test_invalid_fields_get_the_error_shape_and_change_nothing(api: APIClient, body: dict, field: str) -> None:
    response = api.post("/api/persons", body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"]
    assert field in error["details"]
    assert Person.objects.count() == 0


def test_malformed_json_is_a_400_in_the_error_shape(api: APIClient) -> None:
    response = api.generic("POST", "/api/persons", '{"name": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert Person.objects.count() == 0


def test_an_oversize_body_is_a_413(api: APIClient) -> None:
    body = json.dumps({"name": "Big", "notes": "a" * (9 * 1024 * 1024)})

    response = api.generic("POST", "/api/persons", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert Person.objects.count() == 0


def test_unknown_and_malformed_ids_are_404(api: APIClient) -> None:
    assert api.get(f"/api/persons/{uuid.uuid4()}").status_code == 404
    assert api.get("/api/persons/not-a-uuid").json()["error"]["code"] == "not_found"


def test_a_pet_cannot_name_another_organizations_person_as_owner(make_organization, make_api) -> None:
    mine, theirs = make_api(make_organization("Mine")), make_api(make_organization("Theirs"))
    their_person = theirs.post("/api/persons", {"name": "Theirs"}, format="json").json()

    response = mine.post("/api/pets", {"name": "Rex", "type": "dog", "owner": their_person["id"]}, format="json")

    assert response.status_code == 400
    assert "owner" in response.json()["error"]["details"]
    assert Pet.objects.count() == 0


@pytest.mark.parametrize("path", ["/api/persons", "/api/pets", "/api/toys"])
def test_no_token_is_401(path: str) -> None:
    response = APIClient().get(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_bad_token_is_401() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-real-token")

    assert client.get("/api/persons").status_code == 401


def test_read_scope_cannot_write_and_write_needs_its_scope(organization, make_api) -> None:
    reader = make_api(organization, scopes="entities:read")
    no_entities = make_api(organization, scopes="events:read")

    refused = reader.post("/api/persons", {"name": "Ada"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert reader.get("/api/persons").status_code == 200
    assert no_entities.get("/api/persons").status_code == 403
    assert Person.objects.count() == 0


ENTITY_BODIES = {
    "persons": {"name": "Other"},
    "pets": {"name": "Other", "type": "cat"},
    "toys": {"name": "Other"},
}


@pytest.mark.parametrize("kind", ["persons", "pets", "toys"])
def test_another_organizations_entity_is_a_404_for_every_method(make_organization, make_api, kind: str) -> None:
    owner, stranger = make_api(make_organization("Owner")), make_api(make_organization("Stranger"))
    entity = owner.post(f"/api/{kind}", ENTITY_BODIES[kind], format="json").json()
    path = f"/api/{kind}/{entity['id']}"

    assert stranger.get(path).status_code == 404
    assert stranger.patch(path, {"name": "Hijacked"}, format="json").status_code == 404
    assert stranger.put(path, ENTITY_BODIES[kind], format="json").status_code == 404
    assert stranger.delete(path).status_code == 404
    assert stranger.get(f"/api/{kind}").json()["results"] == []
    assert owner.get(path).json()["name"] == "Other"


def test_deleting_a_person_deletes_their_pets_and_toys(api: APIClient) -> None:
    person = api.post("/api/persons", {"name": "Ada"}, format="json").json()
    pet = api.post("/api/pets", {"name": "Buddy", "type": "dog", "owner": person["id"]}, format="json").json()
    api.post("/api/toys", {"name": "Ball", "pet": pet["id"]}, format="json")

    api.delete(f"/api/persons/{person['id']}")

    assert Pet.objects.count() == 0
    assert Toy.objects.count() == 0


def test_creating_a_person_costs_two_queries(api: APIClient, django_assert_num_queries, monkeypatch) -> None:
    """The insert, the outbox insert.

    Plus the savepoint pair that the test's own transaction turns the request's transaction into; the
    relay's NOTIFY runs after a real commit, which a test transaction never reaches. The request just
    before read the token (taken without a query for ``OAUTH_TOKEN_CACHE_SECONDS``, a time that stands
    still here) and the quota for the headers (read at most once a second).
    """
    monkeypatch.setattr(recent_tokens, "clock", lambda: 0.0)
    api.get("/api/persons")  # warm up: read the token and the quota

    with django_assert_num_queries(2 + 2):
        response = api.post("/api/persons", {"name": "Ada"}, format="json")

    assert response.status_code == 201
    assert response.json()["pets"] == []


def test_a_change_renders_the_entity_once_for_its_event_and_its_response(api: APIClient, monkeypatch) -> None:
    rendered: list[str] = []
    render = serializers.ModelSerializer.to_representation  # DRF's own: what rendering costs

    def counted(self, instance):
        rendered.append(type(self).__name__)
        return render(self, instance)

    monkeypatch.setattr(serializers.ModelSerializer, "to_representation", counted)
    created = api.post("/api/persons", {"name": "Ada", "notes": "x" * 1000}, format="json")
    person_id = created.json()["id"]
    patched = api.patch(f"/api/persons/{person_id}", {"status": "inactive"}, format="json")
    unchanged = api.patch(f"/api/persons/{person_id}", {"status": "inactive"}, format="json")  # no event

    # Once per change, for its event and response alike; the change that changed nothing, for its response.
    assert rendered == ["PersonSerializer", "PersonSerializer", "PersonSerializer"]
    events = {event.type: json.loads(event.body)["data"] for event in Event.objects.all()}
    assert set(events) == {"person.created", "person.updated"}
    assert created.json() == events["person.created"]
    assert patched.json() == events["person.updated"]
    assert (patched.json()["status"], unchanged.json()["status"]) == ("inactive", "inactive")


def test_a_lone_surrogate_in_an_entitys_text_is_still_refused_with_drfs_message() -> None:
    serializer = PersonSerializer(data={"name": "Ada \ud800"})

    assert not serializer.is_valid()
    assert serializer.errors["name"] == ["Surrogate characters are not allowed: U+D800."]
    assert PersonSerializer(data={"name": "Ada \U0001f600"}).is_valid()  # a character beyond the BMP is no surrogate


def test_a_new_entitys_empty_children_compile_no_query(api: APIClient, monkeypatch) -> None:
    """Its pets are known to be none: rendering them for its event and response builds no SQL to find that out."""
    compiled: list[str] = []
    as_sql = SQLCompiler.as_sql

    def counted(self, *args, **kwargs):
        compiled.append(self.query.model.__name__)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counted)
    response = api.post("/api/persons", {"name": "Ada"}, format="json")

    assert response.status_code == 201
    assert response.json()["pets"] == []
    assert "Pet" not in compiled


def test_each_serializer_has_fields_of_its_own() -> None:
    first, second = PersonSerializer(), PersonSerializer()

    for name in ("name", "status", "pets"):
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first and second.fields[name].parent is second
    assert first.fields["pets"].child is not second.fields["pets"].child  # type: ignore[attr-defined]
    assert first.fields["status"].choices == second.fields["status"].choices  # type: ignore[attr-defined]


def test_a_serializer_class_looks_for_its_models_constraints_once(monkeypatch) -> None:
    """DRF would look through the model's constraints for every serializer it makes: once per class is enough."""

    class OnePersonSerializer(PersonSerializer):
        class Meta(PersonSerializer.Meta):
            pass

    looked_up: list[type] = []
    unique_together = serializers.ModelSerializer.get_unique_together_validators

    def counted(self):
        looked_up.append(type(self))
        return unique_together(self)

    monkeypatch.setattr(serializers.ModelSerializer, "get_unique_together_validators", counted)
    first, second = OnePersonSerializer(), OnePersonSerializer()

    assert first.validators == second.validators == []  # a Person has no fields unique together
    assert first.validators is not second.validators
    assert looked_up == [OnePersonSerializer]
