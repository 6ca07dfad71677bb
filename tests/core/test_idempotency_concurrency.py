"""Two requests with one ``Idempotency-Key`` at once: the second waits for the first's transaction, then is
answered its answer (one write, one event), or makes the request itself when the first rolled back."""

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.models.signals import post_save
from rest_framework.exceptions import ValidationError
from rest_framework.test import APIClient

from sapien.core.models import IdempotencyRecord
from sapien.entities.models import Person
from sapien.events.models import Event
from tests.support.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "retry-of-a-timed-out-create"


def create_in_thread(api: APIClient, answers: dict[str, Any], name: str) -> threading.Thread:
    def run() -> None:
        try:
            answers[name] = api.post("/api/persons", {"name": "Ada"}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def waiting_on_a_lock() -> int:
    """Sessions of this database blocked on a lock while claiming a key."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE '%%core_idempotencyrecord%%'"
        )
        return cursor.fetchone()[0]


@pytest.fixture
def first_person_save_held() -> Iterator[tuple[threading.Event, threading.Event, list[Callable[[], None]]]]:
    """The first Person saved stops inside its request's transaction until ``release`` is set, then runs
    ``then`` (e.g. raises, to roll that request back)."""
    held, release = threading.Event(), threading.Event()
    then: list[Callable[[], None]] = []
    saves: list[object] = []

    def hold(sender: Any, instance: Person, created: bool, **kwargs: Any) -> None:
        saves.append(instance.pk)
        if len(saves) == 1:
            held.set()
            assert release.wait(timeout=60)
            for step in then:
                step()

    post_save.connect(hold, sender=Person, weak=False, dispatch_uid="test-hold-first-person")
    yield held, release, then
    post_save.disconnect(sender=Person, dispatch_uid="test-hold-first-person")


def test_a_retry_sent_while_the_first_request_runs_waits_and_gets_its_answer(api, first_person_save_held) -> None:
    held, release, _ = first_person_save_held
    answers: dict[str, Any] = {}
    first = create_in_thread(api, answers, "first")
    assert held.wait(timeout=30)  # the first has claimed the key and written its Person, not committed

    retry = create_in_thread(api, answers, "retry")
    wait_until(lambda: waiting_on_a_lock() == 1, message="the retry to wait on the first's key")
    release.set()
    first.join()
    retry.join()

    assert answers["first"].status_code == answers["retry"].status_code == 201
    assert answers["retry"].content == answers["first"].content
    assert answers["retry"]["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in answers["first"]
    assert Person.objects.count() == 1
    assert Event.objects.filter(type="person.created").count() == 1


def test_a_retry_waiting_on_a_first_request_that_rolls_back_makes_the_request_itself(
    api, first_person_save_held
) -> None:
    held, release, then = first_person_save_held

    def refuse() -> None:
        raise ValidationError("refused after the write, so the request rolls back")

    then.append(refuse)
    answers: dict[str, Any] = {}
    first = create_in_thread(api, answers, "first")
    assert held.wait(timeout=30)

    retry = create_in_thread(api, answers, "retry")
    wait_until(lambda: waiting_on_a_lock() == 1, message="the retry to wait on the first's key")
    release.set()
    first.join()
    retry.join()

    assert answers["first"].status_code == 400
    assert answers["retry"].status_code == 201
    assert "Idempotent-Replayed" not in answers["retry"]
    assert [str(pk) for pk in Person.objects.values_list("id", flat=True)] == [answers["retry"].json()["id"]]
    assert Event.objects.filter(type="person.created").count() == 1
    assert IdempotencyRecord.objects.get().status_code == 201


def test_identical_requests_at_once_make_one_person(api) -> None:
    answers: dict[str, Any] = {}
    barrier = threading.Barrier(4)

    def run(name: str) -> None:
        barrier.wait()
        try:
            answers[name] = api.post("/api/persons", {"name": "Ada"}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(f"client-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [response.status_code for response in answers.values()] == [201] * 4
    assert len({response.content for response in answers.values()}) == 1
    assert sum("Idempotent-Replayed" not in response for response in answers.values()) == 1
    assert Person.objects.count() == 1
    assert Event.objects.filter(type="person.created").count() == 1
