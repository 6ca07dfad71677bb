"""The health check of a kept connection (``sapien/core/postgresql``): no round trip while the server has said
nothing; Django's ``SELECT 1`` when it has."""

import select
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connections

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def kept() -> Iterator[Any]:
    """A connection of the default database's settings, apart from the one the test runs in."""
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


def _statements_sent(wrapper: Any, monkeypatch) -> list[str]:
    """What the connection is asked to run from here on, by ``execute`` on it or on any cursor of it."""
    sent: list[str] = []
    raw = wrapper.connection
    execute, cursor = raw.execute, raw.cursor

    def counted_execute(query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return execute(query, *args, **kwargs)

    def counted_cursor(*args: Any, **kwargs: Any) -> Any:
        made = cursor(*args, **kwargs)
        run = made.execute

        def counted(query: Any, *more: Any, **options: Any) -> Any:
            sent.append(str(query))
            return run(query, *more, **options)

        made.execute = counted
        return made

    monkeypatch.setattr(raw, "execute", counted_execute)
    monkeypatch.setattr(raw, "cursor", counted_cursor)
    return sent


def _other_session(wrapper: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(**wrapper.get_connection_params(), autocommit=True)


def _wait_readable(wrapper: Any) -> None:
    poller = select.poll()
    poller.register(wrapper.connection.fileno(), select.POLLIN)
    assert poller.poll(10_000), "the server never said anything"


def test_a_connection_the_server_said_nothing_on_is_usable_without_a_query(kept, monkeypatch) -> None:
    sent = _statements_sent(kept, monkeypatch)

    assert kept.is_usable()
    assert sent == []


def test_a_connection_the_server_ended_is_not_usable_and_is_replaced(kept) -> None:
    with _other_session(kept) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [kept.connection.info.backend_pid])
    _wait_readable(kept)

    assert not kept.is_usable()
    kept.health_check_done = False
    kept.close_if_health_check_failed()  # what Django does before the next request's first query
    with kept.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_a_connection_the_server_said_something_else_on_is_asked_with_select_1(kept, monkeypatch) -> None:
    kept.connection.execute("LISTEN sapien_test_backend")
    with _other_session(kept) as other:
        other.execute("NOTIFY sapien_test_backend")
    _wait_readable(kept)
    sent = _statements_sent(kept, monkeypatch)

    assert kept.is_usable()
    assert sent == ["SELECT 1"]
