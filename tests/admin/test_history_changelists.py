"""The history changelists (deliveries, attempts, events) at scale: no full count, no OFFSET, index-served filters.

``sapien.core.history_admin``: a fixed (time, id) order, keyset paging with ``?before=``, a count capped at
``COUNT_CAP`` rows (the planner's estimate past it), and only the filter combinations an index serves.
"""

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, DeliveryStatus
from sapien.core.history_admin import COUNT_CAP, EstimatedCountPaginator, HistoryModelAdmin
from sapien.core.models import Organization
from sapien.events.models import Event
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db
HISTORY_TABLES = ("deliveries_delivery", "deliveries_deliveryattempt", "events_event")
CAPPED_COUNT = re.compile(r"SELECT COUNT\(\*\) FROM \(SELECT .* LIMIT (\d+)\) subquery", re.DOTALL)


def make_history(organization: Organization, subscription: Subscription, count: int) -> list[Delivery]:
    """``count`` events with a delivery and an attempt each, newest first; every two share their time (a tie)."""
    now = timezone.now()
    deliveries = []
    for i in range(count):
        moment = now - timedelta(seconds=i // 2)
        event_type = "person.created" if i % 3 else "pet.updated"
        event = Event.objects.create(organization=organization, type=event_type, body="{}", created_at=moment)
        status = DeliveryStatus.FAILED if i % 2 else DeliveryStatus.SUCCEEDED
        delivery = Delivery.objects.create(
            organization=organization, event=event, event_created_at=moment, event_type=event_type,
            subscription=subscription, status=status, attempt_count=1,
        )  # fmt: skip
        DeliveryAttempt.objects.create(
            delivery=delivery, event_created_at=moment, number=1, started_at=moment + timedelta(milliseconds=10),
            duration_ms=40, status_code=500 if i % 2 else 200, succeeded=not i % 2,
        )  # fmt: skip
        deliveries.append(delivery)
    return deliveries


@pytest.fixture
def subscription(organization) -> Subscription:
    return Subscription.objects.create(
        organization=organization, callback_url="https://hooks.example.com/", events=["*"], secret="s"
    )


@pytest.fixture
def history(organization, subscription) -> list[Delivery]:
    return make_history(organization, subscription, 7)


@pytest.fixture
def page_of_three(monkeypatch):
    for model in (Delivery, DeliveryAttempt, Event):
        monkeypatch.setattr(admin.site.get_model_admin(model), "list_per_page", 3)


def newest_first(rows):
    """(time, id) descending, as PostgreSQL orders them (a UUID compares as its 16 bytes in Python too)."""
    return sorted(rows, reverse=True)


def changelists(history: list[Delivery]) -> list[str]:
    delivery, event = history[0], history[0].event
    return [
        "/admin/deliveries/delivery/",
        f"/admin/deliveries/delivery/?subscription={delivery.subscription_id}",
        f"/admin/deliveries/delivery/?subscription={delivery.subscription_id}&status__exact=failed",
        f"/admin/deliveries/delivery/?subscription={delivery.subscription_id}&event_type=person.created",
        f"/admin/deliveries/delivery/?q={delivery.id}",
        f"/admin/deliveries/delivery/?q={event.id}",
        "/admin/deliveries/deliveryattempt/",
        f"/admin/deliveries/deliveryattempt/?delivery={delivery.id}",
        "/admin/events/event/",
        f"/admin/events/event/?organization={event.organization_id}",
        f"/admin/events/event/?organization={event.organization_id}&type=person.created",
        f"/admin/events/event/?q={event.id}",
    ]


def index_columns(name: str) -> list[str] | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_class i JOIN pg_index x ON x.indexrelid = i.oid"
            " CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)"
            " JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum"
            " WHERE i.relname = %s GROUP BY i.oid",
            [name],
        )
        row = cursor.fetchone()
    return row[0] if row else None


@pytest.mark.parametrize("model", [Delivery, DeliveryAttempt, Event])
def test_each_filter_combination_offered_names_an_index_that_leads_with_its_columns(model) -> None:
    model_admin = admin.site.get_model_admin(model)
    assert isinstance(model_admin, HistoryModelAdmin)
    for combination, index_name in model_admin.history_filter_indexes.items():
        columns = index_columns(index_name)
        filtered = {model._meta.get_field(name).column for name in combination}
        time_column = model._meta.get_field(model_admin.history_time_field).column

        assert columns is not None, index_name
        assert set(columns[: len(filtered)]) == filtered, (index_name, columns)
        if not combination:
            assert columns[:2] == [time_column, "id"], (index_name, columns)


def test_each_changelist_renders_with_its_filters(admin_client: Client, history) -> None:
    for path in changelists(history):
        response = admin_client.get(path)

        assert response.status_code == 200, path
        assert response.context["cl"].result_list, path


def test_filters_narrow_the_list_to_what_they_name(admin_client: Client, history, organization) -> None:
    other = Subscription.objects.create(
        organization=organization, callback_url="https://other.example.com/", events=["*"], secret="s"
    )
    make_history(organization, other, 2)
    subscription_id = history[0].subscription_id

    failed = admin_client.get(f"/admin/deliveries/delivery/?subscription={subscription_id}&status__exact=failed")
    typed = admin_client.get(f"/admin/deliveries/delivery/?subscription={subscription_id}&event_type=pet.updated")
    attempts = admin_client.get(f"/admin/deliveries/deliveryattempt/?delivery={history[1].id}")

    assert {d.id for d in failed.context["cl"].result_list} == {d.id for d in history if d.status == "failed"}
    assert {d.id for d in typed.context["cl"].result_list} == {d.id for d in history if d.event_type == "pet.updated"}
    assert [a.delivery_id for a in attempts.context["cl"].result_list] == [history[1].id]


@pytest.mark.parametrize(
    ("path", "queries"),
    [
        # session, user; SAVEPOINT and RELEASE (ATOMIC_REQUESTS); the capped count; the page (with its subscriptions).
        ("/admin/deliveries/delivery/", 6),
        ("/admin/deliveries/delivery/?subscription={subscription}&status__exact=failed", 6),
        # the same, the page without a join
        ("/admin/deliveries/deliveryattempt/", 6),
        # the same, the page with its organizations
        ("/admin/events/event/", 6),
        ("/admin/events/event/?organization={organization}&type=person.created", 6),
    ],
)
def test_each_changelist_costs_a_fixed_number_of_queries(
    admin_client: Client, history, django_assert_num_queries, path: str, queries: int
) -> None:
    path = path.format(subscription=history[0].subscription_id, organization=history[0].organization_id)
    admin_client.get(path)  # the session is read once warm

    with django_assert_num_queries(queries):
        assert admin_client.get(path).status_code == 200


def test_past_the_cap_the_count_is_the_planners_estimate_at_one_more_query(
    admin_client: Client, history, monkeypatch, django_assert_num_queries
) -> None:
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 3)
    admin_client.get("/admin/deliveries/delivery/")

    with django_assert_num_queries(7) as captured:  # the capped count came back full: EXPLAIN as well
        page = admin_client.get("/admin/deliveries/delivery/")

    assert any(query["sql"].startswith("EXPLAIN (FORMAT json) SELECT") for query in captured.captured_queries)
    assert page.context["cl"].count_is_exact is False
    assert "about " in page.content.decode()
    assert "(estimated: counting stops at 3)" in page.content.decode()


def test_below_the_cap_the_count_is_exact(admin_client: Client, history) -> None:
    page = admin_client.get("/admin/deliveries/delivery/").content.decode()

    assert "7 deliveries" in page
    assert "about" not in page


def test_no_changelist_counts_a_whole_history_table_or_pages_by_offset(
    admin_client: Client, history, page_of_three
) -> None:
    older_pages = []
    for path in changelists(history):
        cl = admin_client.get(path).context["cl"]
        if cl.older_query_string:
            older_pages.append(path.split("?")[0] + cl.older_query_string)
    assert len(older_pages) >= 6  # every list that has an older page is read there too

    for path in changelists(history) + older_pages:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(path).status_code == 200, path

        for query in (query["sql"] for query in captured.captured_queries):
            assert "OFFSET" not in query.upper(), (path, query)
            if "COUNT(" in query.upper():
                capped = CAPPED_COUNT.fullmatch(query)
                assert capped is not None, (path, query)
                assert int(capped.group(1)) == COUNT_CAP + 1, (path, query)
            if any(table in query for table in HISTORY_TABLES):
                assert " LIMIT " in query, (path, query)  # every read of a history table is bounded


@pytest.mark.parametrize("model", ["deliveries/delivery", "deliveries/deliveryattempt", "events/event"])
def test_older_links_walk_the_whole_list_once_newest_first(
    admin_client: Client, history, page_of_three, model: str
) -> None:
    time_field = {"deliveries/delivery": "event_created_at", "deliveries/deliveryattempt": "started_at"}.get(
        model, "created_at"
    )
    path, seen, pages = f"/admin/{model}/", [], 0
    while path:
        cl = admin_client.get(path).context["cl"]
        seen += [(getattr(row, time_field), row.pk) for row in cl.result_list]
        assert bool(cl.cursor) == bool(pages)  # "newest" from the second page on
        path = f"/admin/{model}/{cl.older_query_string}" if cl.older_query_string else ""
        pages += 1

    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert seen == newest_first(seen)  # ties on time broken by id, descending, across page boundaries


def test_the_order_is_fixed_whatever_the_query_string_asks(admin_client: Client, history) -> None:
    page = admin_client.get("/admin/deliveries/delivery/?o=2")

    rows = [(d.event_created_at, d.pk) for d in page.context["cl"].result_list]
    assert rows == newest_first(rows)
    assert 'class="sortable' not in page.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        "status__exact=failed",  # no index leads with status: choose a subscription first
        "event_type=person.created",
        "subscription={subscription}&status__exact=failed&event_type=person.created",
        "organization__id__exact={organization}",  # Django's own lookups are not filters here
        "last_error__icontains=timeout",
        "subscription={subscription}&subscription={subscription}",
        "subscription=not-a-uuid",
        "before=yesterday",
        "before=2026-01-01T00:00:00Z,not-a-uuid",
    ],
)
def test_a_query_no_index_serves_is_refused(admin_client: Client, history, query: str) -> None:
    query = query.format(subscription=history[0].subscription_id, organization=history[0].organization_id)

    response = admin_client.get(f"/admin/deliveries/delivery/?{query}")

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_the_sidebar_offers_only_combinations_an_index_serves(admin_client: Client, history) -> None:
    subscription_id = history[0].subscription_id

    def titles(path: str) -> list[str]:
        return [spec.title for spec in admin_client.get(path).context["cl"].filter_specs]

    assert titles("/admin/deliveries/delivery/") == ["subscription"]
    assert titles(f"/admin/deliveries/delivery/?subscription={subscription_id}") == [
        "subscription", "status", "event type",
    ]  # fmt: skip
    assert titles("/admin/events/event/") == ["organization"]
    assert titles(f"/admin/events/event/?organization={history[0].organization_id}") == ["organization", "type"]

    by_status = admin_client.get(f"/admin/deliveries/delivery/?subscription={subscription_id}&status__exact=failed")
    cl = by_status.context["cl"]
    type_links = [c["query_string"] for c in cl.filter_specs[2].choices(cl) if "event_type=" in c["query_string"]]
    clear_subscription = cl.filter_specs[0].choices(cl).__next__()["clear_query_string"]
    assert type_links and all("status" not in link and "subscription=" in link for link in type_links)
    assert "status" not in clear_subscription  # status alone has no index: it goes with its subscription


def test_search_takes_exact_ids_only(admin_client: Client, history) -> None:
    delivery = history[3]

    by_delivery = admin_client.get(f"/admin/deliveries/delivery/?q={delivery.id}").context["cl"].result_list
    by_event = admin_client.get(f"/admin/deliveries/delivery/?q={delivery.event_id}").context["cl"].result_list
    with CaptureQueriesContext(connection) as captured:
        by_text = admin_client.get("/admin/deliveries/delivery/?q=hooks.example.com").context["cl"].result_list

    assert [d.id for d in by_delivery] == [d.id for d in by_event] == [delivery.id]
    assert list(by_text) == []
    assert not any("LIKE" in query["sql"] for query in captured.captured_queries)


def test_the_redeliver_action_works_on_rows_of_an_older_page(admin_client: Client, history, page_of_three) -> None:
    older = admin_client.get("/admin/deliveries/delivery/").context["cl"].older_query_string
    oldest = history[-1]

    response = admin_client.post(
        f"/admin/deliveries/delivery/{older}", {"action": "redeliver", "_selected_action": [str(oldest.id)]}
    )

    assert response.status_code == 302
    oldest.refresh_from_db()
    assert (oldest.status, oldest.attempt_count) == (DeliveryStatus.PENDING, 0)


def test_an_action_on_every_matching_row_is_refused(admin_client: Client, history) -> None:
    response = admin_client.post(
        "/admin/deliveries/delivery/",
        {"action": "redeliver", "select_across": "1", "_selected_action": [str(history[0].id)]},
        follow=True,
    )

    assert "never to every matching row" in response.content.decode()
    assert not Delivery.objects.filter(status=DeliveryStatus.PENDING).exists()


def test_attempts_are_read_only(admin_client: Client, history) -> None:
    attempt = DeliveryAttempt.objects.get(delivery=history[0])

    page = admin_client.get(f"/admin/deliveries/deliveryattempt/{attempt.pk}/change/")
    listing = admin_client.get("/admin/deliveries/deliveryattempt/").content.decode()

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert 'name="action"' not in listing
