"""Cursor pages (sapien.core.pagination): every row once, newest first, stable under inserts, no COUNT, bounded,
bad cursors a 400, one organization's rows only, and each list and filter served by an index."""

import base64
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from availability.models import AvailabilityProfile
from deliveries.models import Delivery, DeliveryStatus
from sapien.core import pagination
from sapien.core.auth import recent_tokens
from sapien.core.models import Organization, User
from sapien.entities.models import Person, Pet, Toy
from sapien.events.models import Event
from sapien.events.outbox import record_event
from subscriptions.models import Subscription
from tests.support.events import events_backdate

pytestmark = pytest.mark.django_db


# Rows at chosen moments, and the order a list must show them in.


def seconds_ago(*ages: int) -> list[datetime]:
    now = timezone.now()
    return [now - timedelta(seconds=age) for age in ages]


# Several rows share a moment: the id alone orders them.
AGES = (70, 60, 60, 60, 50, 40, 40, 30, 20)


def persons_at(organization: Organization, moments: Sequence[datetime], **fields: Any) -> list[Person]:
    persons = Person.objects.bulk_create(
        [Person(organization=organization, name=f"Person {index}", **fields) for index in range(len(moments))]
    )
    for person, moment in zip(persons, moments, strict=True):
        Person.objects.filter(pk=person.pk).update(created_at=moment)
        person.created_at = moment
    return persons


def newest_first(rows: Sequence[Any], moment: Callable[[Any], datetime] = lambda row: row.created_at) -> list[str]:
    """The list's order, computed here rather than by the database: (time, id), both descending."""
    return [str(row.id) for row in sorted(rows, key=lambda row: (moment(row), row.id), reverse=True)]


def walk(api: APIClient, url: str, params: dict[str, Any] | None = None, *, link: str = "next") -> list[list[str]]:
    """The ids of each page, following ``link`` from ``url`` until it is null."""
    pages = []
    response = api.get(url, params)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"next", "previous", "results"}
        pages.append([row["id"] for row in body["results"]])
        if body[link] is None:
            return pages
        response = api.get(body[link])


def flat(pages: list[list[str]]) -> list[str]:
    return [row_id for page in pages for row_id in page]


# Walking a list.


def test_walking_the_next_links_shows_every_row_once_newest_first(api: APIClient, organization) -> None:
    persons = persons_at(organization, seconds_ago(*AGES))

    pages = walk(api, "/api/persons", {"page_size": 4})

    assert [len(page) for page in pages] == [4, 4, 1]
    assert flat(pages) == newest_first(persons)
    assert api.get("/api/persons", {"page_size": 4}).json()["previous"] is None


def test_walking_the_previous_links_back_shows_the_same_pages(api: APIClient, organization) -> None:
    persons_at(organization, seconds_ago(*AGES))
    forward = walk(api, "/api/persons", {"page_size": 4})
    last = api.get("/api/persons", {"page_size": 4})
    while last.json()["next"] is not None:
        last = api.get(last.json()["next"])

    backward = walk(api, last.json()["previous"], link="previous")

    assert backward == forward[-2::-1]


def test_a_list_shorter_than_a_page_has_no_links(api: APIClient, organization) -> None:
    persons = persons_at(organization, seconds_ago(3, 2, 1))

    body = api.get("/api/persons", {"page_size": 3}).json()

    assert body == {"next": None, "previous": None, "results": body["results"]}
    assert [row["id"] for row in body["results"]] == newest_first(persons)
    assert api.get("/api/pets").json() == {"next": None, "previous": None, "results": []}


def test_a_page_stays_put_while_rows_arrive_at_the_top(api: APIClient, organization) -> None:
    """No duplicate, no skip: the next page starts below the last row shown, wherever the top has moved."""
    persons = persons_at(organization, seconds_ago(*AGES))
    first = api.get("/api/persons", {"page_size": 4}).json()
    arrived = persons_at(organization, seconds_ago(5, 4, 3, 2, 1))

    rest = walk(api, first["next"])
    second = api.get(first["next"]).json()
    above = walk(api, second["previous"], link="previous")

    assert [row["id"] for row in first["results"]] + flat(rest) == newest_first(persons)
    # Back up from the second page: the first page as it was shown, then what arrived above it.
    assert above[0] == [row["id"] for row in first["results"]]
    assert flat(above[:0:-1]) == newest_first(arrived)


def test_a_cursor_still_works_when_its_row_is_deleted(api: APIClient, organization) -> None:
    persons = persons_at(organization, seconds_ago(*AGES))
    order = newest_first(persons)
    first = api.get("/api/persons", {"page_size": 4}).json()
    Person.objects.filter(pk=first["results"][-1]["id"]).delete()

    assert flat(walk(api, first["next"])) == order[4:]


def test_no_link_leads_to_a_dead_end_when_rows_are_deleted_meanwhile(api: APIClient, organization) -> None:
    persons = persons_at(organization, seconds_ago(*AGES))
    order = newest_first(persons)
    first = api.get("/api/persons", {"page_size": 4}).json()
    second = api.get(first["next"]).json()
    Person.objects.filter(pk__in=order[:4] + order[8:]).delete()  # everything above the second page, and below

    back = api.get(second["previous"]).json()  # nothing above: the first page instead
    past_the_end = api.get(second["next"]).json()  # nothing below: an empty page that leads back

    assert [row["id"] for row in back["results"]] == order[4:8]
    assert back["previous"] is None
    assert past_the_end["results"] == []
    assert past_the_end["next"] is None
    assert [row["id"] for row in api.get(past_the_end["previous"]).json()["results"]] == order[4:8]


# Filters, each with the cursor.


def test_person_filters_walk_with_the_cursor(api: APIClient, organization) -> None:
    moments = seconds_ago(*AGES)
    active = persons_at(organization, moments, status="active", email="Ada@Example.com")
    persons_at(organization, moments, status="archived", email="grace@example.com")
    since, until = moments[6], moments[1]  # 40 s ago (inclusive) to 60 s ago (exclusive)

    assert flat(walk(api, "/api/persons", {"status": "active", "page_size": 2})) == newest_first(active)
    assert flat(walk(api, "/api/persons", {"email": "ada@example.COM", "page_size": 2})) == newest_first(active)
    assert flat(
        walk(api, "/api/persons", {"status": "active", "created_after": until.isoformat(),
                                   "created_before": since.isoformat(), "page_size": 2})
    ) == newest_first([p for p in active if until <= p.created_at < since])  # fmt: skip
    assert flat(walk(api, "/api/persons", {"name": "person 1", "status": "active", "page_size": 1})) == [
        str(active[1].id)
    ]


def test_pet_and_toy_filters_walk_with_the_cursor(api: APIClient, organization) -> None:
    owner = Person.objects.create(organization=organization, name="Owner")
    moments = seconds_ago(*AGES)
    dogs = Pet.objects.bulk_create(
        [Pet(organization=organization, name="Rex", type="Dog", owner=owner) for _ in moments]
    )
    Pet.objects.bulk_create([Pet(organization=organization, name="Tom", type="cat", owner=None) for _ in moments])
    for pet, moment in zip(dogs, moments, strict=True):
        Pet.objects.filter(pk=pet.pk).update(created_at=moment)
        pet.created_at = moment
    toys = Toy.objects.bulk_create([Toy(organization=organization, name="Ball", pet=dogs[0]) for _ in moments])
    Toy.objects.bulk_create([Toy(organization=organization, name="Bone", pet=dogs[1]) for _ in moments])
    for toy, moment in zip(toys, moments, strict=True):
        Toy.objects.filter(pk=toy.pk).update(created_at=moment)
        toy.created_at = moment

    assert flat(walk(api, "/api/pets", {"type": "dOG", "page_size": 2})) == newest_first(dogs)
    assert flat(walk(api, "/api/pets", {"owner": str(owner.id), "page_size": 2})) == newest_first(dogs)
    assert flat(walk(api, "/api/toys", {"pet": str(dogs[0].id), "page_size": 2})) == newest_first(toys)


def events_at(organization: Organization, moments: Sequence[datetime], event_type: str) -> list[Event]:
    events = []
    for moment in moments:
        event = record_event(organization_id=organization.id, event_type=event_type, data={})
        assert event is not None
        events_backdate(moment, pk=event.pk)
        event.created_at = moment
        events.append(event)
    return events


def test_event_filters_walk_with_the_cursor(api: APIClient, organization) -> None:
    moments = seconds_ago(*AGES)
    people = events_at(organization, moments, "person.created")
    pets = events_at(organization, moments, "pet.created")
    since, until = moments[6], moments[1]

    assert flat(walk(api, "/api/v1/events", {"page_size": 5})) == newest_first(people + pets)
    assert flat(walk(api, "/api/v1/events", {"type": "pet.created", "page_size": 2})) == newest_first(pets)
    assert flat(
        walk(api, "/api/v1/events", {"type": "person.created", "since": until.isoformat(), "until": since.isoformat(),
                                     "page_size": 2})
    ) == newest_first([e for e in people if until <= e.created_at < since])  # fmt: skip


def subscription_of(organization: Organization) -> Subscription:
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s" * 16
    )


def deliveries_at(
    subscription: Subscription, moments: Sequence[datetime], event_type: str, status: str
) -> list[Delivery]:
    return [
        Delivery.objects.create(
            organization=subscription.organization,
            subscription=subscription,
            event=event,
            event_created_at=event.created_at,
            event_type=event.type,
            status=status,
        )
        for event in events_at(subscription.organization, moments, event_type)
    ]


def test_delivery_log_filters_walk_with_the_cursor(api: APIClient, organization) -> None:
    subscription = subscription_of(organization)
    moments = seconds_ago(*AGES)
    failed = deliveries_at(subscription, moments, "person.created", DeliveryStatus.FAILED)
    succeeded = deliveries_at(subscription, moments, "pet.created", DeliveryStatus.SUCCEEDED)
    url = f"/api/v1/subscriptions/{subscription.id}/deliveries"
    since, until = moments[6], moments[1]

    def by_event_time(delivery: Delivery) -> datetime:
        return delivery.event_created_at

    assert flat(walk(api, url, {"page_size": 4})) == newest_first(failed + succeeded, by_event_time)
    assert flat(walk(api, url, {"status": "failed", "page_size": 2})) == newest_first(failed, by_event_time)
    assert flat(walk(api, url, {"event_type": "pet.created", "page_size": 2})) == newest_first(succeeded, by_event_time)
    assert flat(
        walk(api, url, {"status": "succeeded", "since": until.isoformat(), "until": since.isoformat(), "page_size": 2})
    ) == newest_first([d for d in succeeded if until <= d.event_created_at < since], by_event_time)  # fmt: skip


def test_subscriptions_and_profiles_walk_with_the_cursor(
    api: APIClient, organization, make_api, make_organization
) -> None:
    subscriptions = [subscription_of(organization) for _ in AGES]
    ada = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)
    grace = User.objects.create_user("grace@example.com", "correct-horse", organization=organization)
    profiles = {
        user.pk: [
            AvailabilityProfile.objects.create(organization=organization, user=user, name="p", timezone="UTC")
            for _ in range(5)
        ]
        for user in (ada, grace)
    }

    assert flat(walk(api, "/api/v1/subscriptions", {"page_size": 4})) == newest_first(subscriptions)
    assert flat(walk(api, "/api/v1/availability/profiles", {"page_size": 3})) == newest_first(
        profiles[ada.pk] + profiles[grace.pk]
    )
    assert flat(walk(api, "/api/v1/availability/profiles", {"user_id": str(ada.pk), "page_size": 2})) == (
        newest_first(profiles[ada.pk])
    )
    assert flat(walk(make_api(organization, user=grace), "/api/v1/availability/profiles", {"page_size": 2})) == (
        newest_first(profiles[grace.pk])
    )


# page_size.


def test_the_default_page_is_50_and_at_most_200_can_be_asked_for(api: APIClient, organization) -> None:
    Person.objects.bulk_create([Person(organization=organization, name=f"P{index}") for index in range(201)])

    default = api.get("/api/persons").json()
    largest = api.get("/api/persons", {"page_size": 200}).json()
    empty = api.get("/api/persons?page_size=").json()

    assert len(default["results"]) == 50
    assert len(largest["results"]) == 200
    assert len(walk(api, largest["next"])[0]) == 1
    assert len(empty["results"]) == 50


@pytest.mark.parametrize("page_size", ["0", "201", "-1", "1.5", "abc", "\u0661", "9" * 5000, " 5", "0x10"])
def test_a_page_size_out_of_bounds_or_not_a_count_is_a_400(api: APIClient, page_size: str) -> None:
    response = api.get("/api/persons", {"page_size": page_size})

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "validation_error", "message": "The request has invalid fields.",
            "details": {"page_size": ["Must be an integer from 1 to 200."]},
        }
    }  # fmt: skip


# Cursors.


@pytest.mark.parametrize(
    "moment",
    [timezone.now(), datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)],
    ids=["now", "the first moment", "the last moment"],
)
def test_a_cursor_keeps_its_position_to_the_microsecond_and_is_short_and_url_safe(moment: datetime) -> None:
    for newer, inclusive in [(False, False), (True, False), (False, True), (True, True)]:
        position = pagination.Position(newer=newer, moment=moment, id=uuid.uuid4(), inclusive=inclusive)

        token = pagination.encode_cursor(position, list_path="/api/persons")

        assert pagination.decode_cursor(token, list_path="/api/persons/") == position
        assert re.fullmatch(r"[A-Za-z0-9_-]{55}", token)


def signed_cursor(path: str, position: bytes) -> str:
    """A cursor made with the server's key, as only a holder of SECRET_KEY could."""
    signature = pagination._signature(position, list_path=path)
    return base64.urlsafe_b64encode(position + signature).rstrip(b"=").decode()


def a_real_cursor(api: APIClient, organization: Organization, path: str = "/api/persons") -> str:
    persons_at(organization, seconds_ago(3, 2, 1))
    next_link = api.get(path, {"page_size": 1}).json()["next"]
    match = re.search(r"cursor=([^&]+)", next_link)
    assert match is not None
    return match.group(1)


BAD_QUERIES = {
    "not base64url": "cursor=not%20a%20cursor",
    "NUL": "cursor=%00",
    "a lone surrogate": "cursor=%ED%A0%80",
    "an emoji": "cursor=%F0%9F%92%A9",
    "huge": "cursor=" + "A" * 100_000,
    "one character": "cursor=A",
    "too short": "cursor=AAAA",
    "a JSON object": 'cursor={"ts":1}',
}


@pytest.mark.parametrize("query", BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
def test_a_malformed_cursor_is_a_400_in_the_error_shape(api: APIClient, query: str) -> None:
    response = api.get(f"/api/persons?{query}")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_cursor"
    assert error["message"].startswith("This cursor was not issued by this list")
    assert list(error["details"]) == ["cursor"]


def test_a_tampered_cursor_is_a_400(api: APIClient, organization) -> None:
    cursor = a_real_cursor(api, organization)
    tampered = [cursor[:i] + ("B" if cursor[i] != "B" else "C") + cursor[i + 1 :] for i in range(0, len(cursor), 7)]

    assert api.get("/api/persons", {"cursor": cursor}).status_code == 200
    for token in tampered:
        response = api.get("/api/persons", {"cursor": token})
        assert response.status_code == 400, token
        assert response.json()["error"]["code"] == "invalid_cursor"


def test_a_cursor_of_another_list_is_a_400(api: APIClient, organization) -> None:
    cursor = a_real_cursor(api, organization)
    first, second = subscription_of(organization), subscription_of(organization)
    deliveries_at(first, seconds_ago(3, 2, 1), "person.created", DeliveryStatus.PENDING)
    log_link = api.get(f"/api/v1/subscriptions/{first.id}/deliveries", {"page_size": 1}).json()["next"]
    log_cursor = re.search(r"cursor=([^&]+)", log_link).group(1)  # type: ignore[union-attr]

    assert api.get("/api/persons/", {"cursor": cursor}).status_code == 200  # the same list, with its slash
    assert api.get("/api/pets", {"cursor": cursor}).status_code == 400
    assert api.get(f"/api/v1/subscriptions/{first.id}/deliveries", {"cursor": log_cursor}).status_code == 200
    assert api.get(f"/api/v1/subscriptions/{second.id}/deliveries", {"cursor": log_cursor}).status_code == 400


@pytest.mark.parametrize(
    "position",
    [
        pagination._POSITION.pack(b"n", 2**63 - 1, uuid.uuid4().bytes),  # beyond the year 9999
        pagination._POSITION.pack(b"n", -(2**63), uuid.uuid4().bytes),
        pagination._POSITION.pack(b"x", 0, uuid.uuid4().bytes),  # no such direction
    ],
    ids=["far future", "far past", "no direction"],
)
def test_even_a_correctly_signed_cursor_that_names_no_position_is_a_400(api: APIClient, position: bytes) -> None:
    response = api.get("/api/persons", {"cursor": signed_cursor("/api/persons", position)})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


# Isolation.


def test_another_organizations_rows_never_appear_even_with_its_cursor(
    api: APIClient, organization, make_organization, make_api
) -> None:
    ours = persons_at(organization, seconds_ago(*AGES))
    stranger_organization = make_organization("Stranger")
    theirs = persons_at(stranger_organization, seconds_ago(*AGES))
    stranger = make_api(stranger_organization)
    our_cursor = a_real_cursor(api, organization)

    assert set(flat(walk(api, "/api/persons", {"page_size": 2}))) >= {str(p.id) for p in ours}
    assert not set(flat(walk(api, "/api/persons", {"page_size": 2}))) & {str(p.id) for p in theirs}
    # Our cursor is only a position in time to them: it shows their own rows older than it, no more.
    seen = flat(walk(stranger, "/api/persons", {"cursor": our_cursor, "page_size": 2}))
    assert seen and set(seen) <= {str(p.id) for p in theirs}


# What a page costs.


def lists_with_rows(organization: Organization, make_api: Callable[..., APIClient]) -> list[tuple[str, APIClient]]:
    """Every cursor-paginated list, each holding five rows with their children."""
    moments = seconds_ago(5, 4, 3, 2, 1)
    persons = persons_at(organization, moments)
    for person in persons:
        pet = Pet.objects.create(organization=organization, name="Rex", type="dog", owner=person)
        Toy.objects.create(organization=organization, name="Ball", pet=pet)
    subscription = subscription_of(organization)
    for _ in range(4):
        subscription_of(organization)
    deliveries_at(subscription, moments, "person.created", DeliveryStatus.PENDING)
    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)
    for _ in moments:
        AvailabilityProfile.objects.create(organization=organization, user=user, name="p", timezone="UTC")
    api = make_api(organization)
    lists = ["/api/persons", "/api/pets", "/api/toys", "/api/v1/subscriptions",
             f"/api/v1/subscriptions/{subscription.id}/deliveries", "/api/v1/events", "/api/v1/availability/profiles"]  # fmt: skip
    return [(url, api) for url in lists] + [("/api/v1/availability/profiles", make_api(organization, user=user))]


def test_no_list_counts_its_rows_and_a_page_costs_the_same_queries_whatever_its_size(organization, make_api) -> None:
    for url, api in lists_with_rows(organization, make_api):
        api.get(url)  # warm up, and read the quota for the headers (at most once a second)
        with CaptureQueriesContext(connection) as one_row:
            first = api.get(url, {"page_size": 1})
        with CaptureQueriesContext(connection) as next_row:
            api.get(first.json()["next"])
        with CaptureQueriesContext(connection) as five_rows:
            assert len(api.get(url, {"page_size": 5}).json()["results"]) == 5

        for captured in (one_row, next_row, five_rows):
            assert not [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()], url
        assert len(one_row) == len(next_row) == len(five_rows), url


def test_a_delivery_log_page_costs_four_queries_whatever_its_size(
    api: APIClient, organization, django_assert_num_queries, monkeypatch
) -> None:
    """The subscription, the page (no COUNT), the page's events, the page's attempts.

    Plus the savepoint pair that the test's own transaction turns the request's transaction into; the
    token and the quota for the headers were read by the request just before (the token cache's time
    stands still here).
    """
    monkeypatch.setattr(recent_tokens, "clock", lambda: 0.0)
    subscription = subscription_of(organization)
    deliveries_at(subscription, seconds_ago(*AGES), "person.created", DeliveryStatus.FAILED)
    url = f"/api/v1/subscriptions/{subscription.id}/deliveries"
    first = api.get(url, {"page_size": 2}).json()  # warm up: read the token and the quota

    with django_assert_num_queries(4 + 2):
        assert len(api.get(first["next"]).json()["results"]) == 2
    with django_assert_num_queries(4 + 2):
        assert len(api.get(url, {"page_size": 200}).json()["results"]) == len(AGES)


def page_query(captured: CaptureQueriesContext, table: str) -> str:
    """The one query that reads the list's page: from its table, ordered, limited."""
    (sql,) = [q["sql"] for q in captured.captured_queries if f'FROM "{table}"' in q["sql"] and " LIMIT " in q["sql"]]
    return sql


def test_a_page_after_the_first_is_one_row_comparison_limited_to_the_page_and_one_more(
    api: APIClient, organization
) -> None:
    persons_at(organization, seconds_ago(*AGES))
    first = api.get("/api/persons", {"page_size": 3}).json()

    with CaptureQueriesContext(connection) as captured:
        api.get(first["next"])

    sql = page_query(captured, "entities_person")
    assert '("entities_person"."created_at", "entities_person"."id") < (' in sql
    assert sql.endswith('ORDER BY "entities_person"."created_at" DESC, "entities_person"."id" DESC LIMIT 4')


def plan_of(sql: str) -> str:
    """The plan PostgreSQL would choose if the tables were large: sequential scans and sorts made dear."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan; RESET enable_bitmapscan; RESET enable_sort")
    return plan


INDEXED_FILTERS = [
    ("/api/persons", {}, "entities_person", "person_org_created_idx"),
    ("/api/persons", {"status": "active"}, "entities_person", "person_org_status_idx"),
    ("/api/persons", {"email": "ADA@example.com"}, "entities_person", "person_org_email_idx"),
    ("/api/persons", {"created_after": "2020-01-01T00:00:00Z", "created_before": "2999-01-01T00:00:00Z"},
     "entities_person", "person_org_created_idx"),
    ("/api/pets", {}, "entities_pet", "pet_org_created_idx"),
    ("/api/pets", {"type": "DOG"}, "entities_pet", "pet_org_type_idx"),
    ("/api/pets", {"owner": "{person}"}, "entities_pet", "pet_owner_created_idx"),
    ("/api/toys", {}, "entities_toy", "toy_org_created_idx"),
    ("/api/toys", {"pet": "{pet}"}, "entities_toy", "toy_pet_created_idx"),
    ("/api/v1/subscriptions", {}, "subscriptions_subscription", "subscription_org_created_idx"),
    ("/api/v1/availability/profiles", {}, "availability_availabilityprofile", "profile_org_created_idx"),
    ("/api/v1/availability/profiles", {"user_id": "{user}"}, "availability_availabilityprofile",
     "profile_user_created_idx"),
    # Partitioned: each partition's copy of the index has its own name.
    ("/api/v1/events", {}, "events_event", None),
    ("/api/v1/events", {"type": "person.created", "since": "2020-01-01T00:00:00Z", "until": "2999-01-01T00:00:00Z"},
     "events_event", None),
    ("/api/v1/subscriptions/{subscription}/deliveries", {}, "deliveries_delivery", None),
    ("/api/v1/subscriptions/{subscription}/deliveries", {"status": "failed"}, "deliveries_delivery", None),
    ("/api/v1/subscriptions/{subscription}/deliveries", {"event_type": "person.created"}, "deliveries_delivery",
     None),
    ("/api/v1/subscriptions/{subscription}/deliveries",
     {"since": "2020-01-01T00:00:00Z", "until": "2999-01-01T00:00:00Z"}, "deliveries_delivery", None),
]  # fmt: skip


@pytest.mark.parametrize(("url", "params", "table", "index"), INDEXED_FILTERS)
def test_each_list_and_filter_reads_a_page_from_an_index_without_sorting(
    api: APIClient, organization, url: str, params: dict[str, str], table: str, index: str | None
) -> None:
    """Two rows of each, so that the first page of one has a next; the plan is the next page's."""
    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)
    person = Person.objects.create(organization=organization, name="Ada", email="ada@example.com")
    Person.objects.create(organization=organization, name="Ada", email="ada@example.com")
    pet = Pet.objects.create(organization=organization, name="Rex", type="dog", owner=person)
    Pet.objects.create(organization=organization, name="Rex", type="dog", owner=person)
    for _ in range(2):
        Toy.objects.create(organization=organization, name="Ball", pet=pet)
        subscription = subscription_of(organization)
        AvailabilityProfile.objects.create(organization=organization, user=user, name="p", timezone="UTC")
    deliveries_at(subscription, seconds_ago(3, 2, 1), "person.created", DeliveryStatus.FAILED)
    ids = {"person": str(person.id), "pet": str(pet.id), "subscription": str(subscription.id), "user": str(user.pk)}
    first = api.get(url.format(**ids), {name: value.format(**ids) for name, value in params.items()} | {"page_size": 1})
    assert first.status_code == 200, first.content

    with CaptureQueriesContext(connection) as captured:
        assert api.get(first.json()["next"]).status_code == 200

    plan = plan_of(page_query(captured, table))
    assert not re.search(r"(^|->\s+)(Incremental )?Sort\b", plan, re.MULTILINE), plan  # Merge Append merges, no sort
    assert "Seq Scan" not in plan, plan
    assert "Index" in plan, plan
    if index is not None:
        assert f"using {index} on {table}" in plan, plan


# The published schema.


def test_the_schema_shows_the_cursor_shape_on_every_list() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paginated = {
        path: operation
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method == "get"
        and operation["operationId"].endswith("_list")
        # The event-type catalog is one bounded page, the list's shape with no cursor (docs/api.md).
        and path != "/api/v1/event-types/"
    }

    assert sorted(paginated) == [
        "/api/persons/", "/api/pets/", "/api/toys/", "/api/v1/availability/profiles/", "/api/v1/events/",
        "/api/v1/subscriptions/", "/api/v1/subscriptions/{subscription_id}/deliveries/",
    ]  # fmt: skip
    for path, operation in paginated.items():
        parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
        assert parameters["cursor"]["schema"] == {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}, path
        assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
        assert "page" not in parameters, path
        page = schema["components"]["schemas"][
            operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        ]
        assert page["required"] == ["next", "previous", "results"], path
        assert set(page["properties"]) == {"next", "previous", "results"}, path
    availability = schema["paths"]["/api/v1/availability/"]["get"]["responses"]["200"]["content"]["application/json"]
    listed = schema["components"]["schemas"][availability["schema"]["$ref"].rsplit("/", 1)[1]]
    assert set(listed["properties"]) == {"next", "previous", "results"}
