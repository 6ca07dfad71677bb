"""The relay process's loop: a pass per notification while events come one at a time; under load (a pass found
several, or events arrive faster than ``ESL_RELAY_LINGER_MS``), the commits of a linger share a pass; the wake-ups
the web asks for are published."""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection, transaction

from deliveries.management.commands import run_relay
from deliveries.relay import RelayBatch
from sapien.events.models import OutboxEntry
from sapien.events.outbox import record_event
from sapien.events.wakeups import DELIVER_DUE, WakeUp, wakeup_request
from tests.support.processes import ROOT, wait_until


class RunningRelay:
    """``manage.py run_relay``'s loop in a thread, with every pass's count of events and every publication kept."""

    def __init__(self, monkeypatch) -> None:
        self.passes: list[int] = []
        self.published: list[WakeUp] = []
        relay = run_relay.relay_and_wake_workers

        def counted() -> RelayBatch:
            result = relay()
            self.passes.append(result.events)
            return result

        monkeypatch.setattr(run_relay, "relay_and_wake_workers", counted)
        monkeypatch.setattr(run_relay, "requested_wakeups_publish", lambda wakeups: self.published.extend(wakeups))
        self.command = run_relay.Command()
        self.command.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.command._listen_and_relay()
        finally:
            connection.close()

    def __enter__(self) -> "RunningRelay":
        self.thread.start()
        wait_until(lambda: bool(self.passes), message="the first pass")
        return self

    def __exit__(self, *exc: object) -> None:
        self.command.running = False
        self.thread.join(timeout=10)

    def events_passes(self) -> list[int]:
        """The passes that relayed something."""
        return [events for events in self.passes if events]


def running_relay(settings, monkeypatch, *, poll_seconds: float, linger_ms: float) -> Iterator[RunningRelay]:
    """The relay's loop in a thread with these settings, set before it starts (its first wait reads them)."""
    settings.ESL_RELAY_POLL_SECONDS = poll_seconds
    settings.ESL_RELAY_LINGER_MS = linger_ms
    with RunningRelay(monkeypatch) as running:
        yield running


@pytest.fixture
def relay_loop(transactional_db, settings, monkeypatch) -> Iterator[RunningRelay]:
    # A linger long enough that the test's commits fall inside it, whatever the machine.
    yield from running_relay(settings, monkeypatch, poll_seconds=0.1, linger_ms=500)


@pytest.fixture
def relay_loop_polling_slowly(transactional_db, settings, monkeypatch) -> Iterator[RunningRelay]:
    yield from running_relay(settings, monkeypatch, poll_seconds=0.5, linger_ms=0)


def commit_events(organization, count: int) -> None:
    with transaction.atomic():
        for _ in range(count):
            record_event(organization_id=organization.id, event_type="system.ping", data={})


def relayed() -> bool:
    return not OutboxEntry.objects.exists()


def paced(passes: list[tuple[float, int]]) -> run_relay.PassPacing:
    """Pacing after passes that began at these times (seconds) and relayed these many events."""
    pacing = run_relay.PassPacing()
    for started, events in passes:
        pacing.passed(started=started, events=events)
    return pacing


def steady(*, every: float, seconds: float = 1.0, start: float = 100.0) -> list[tuple[float, int]]:
    """One event per pass, a pass every ``every`` seconds for ``seconds``."""
    return [(start + n * every, 1) for n in range(int(seconds / every))]


@pytest.mark.parametrize(
    ("since_last_pass", "last_events", "linger"),
    [(0.0, 0, 0.0), (0.0, 1, 0.0), (0.002, 2, 0.008), (0.0, 40, 0.010), (0.010, 2, 0.0), (0.5, 3, 0.0)],
)
def test_after_a_lone_pass_that_found_more_than_one_event_the_next_waits_out_the_linger(
    settings, since_last_pass: float, last_events: int, linger: float
) -> None:
    settings.ESL_RELAY_LINGER_MS = 10
    pacing = paced([(100.0, last_events)])

    assert pacing.delay(now=100.0 + since_last_pass) == pytest.approx(linger)


def test_events_arriving_faster_than_the_linger_share_passes_though_each_pass_found_one(settings) -> None:
    settings.ESL_RELAY_LINGER_MS = 10
    pacing = paced(steady(every=0.006))  # 167 events/s, each alone in its pass

    assert pacing.delay(now=pacing.last_start + 0.006) == pytest.approx(0.004)


@pytest.mark.parametrize("every", [0.010, 0.0125, 0.05])
def test_events_arriving_no_faster_than_the_linger_each_go_at_once(settings, every: float) -> None:
    settings.ESL_RELAY_LINGER_MS = 10
    pacing = paced(steady(every=every))

    assert pacing.delay(now=pacing.last_start + 0.002) == 0.0


def test_a_busy_spell_is_forgotten_within_a_few_linger_windows(settings) -> None:
    settings.ESL_RELAY_LINGER_MS = 10
    busy = steady(every=0.004)
    pacing = paced([*busy, (busy[-1][0] + 0.3, 1)])  # 300 ms (three windows) later, a lone event

    assert pacing.delay(now=pacing.last_start + 0.002) == 0.0


def test_no_linger_at_all_when_it_is_set_to_zero(settings) -> None:
    settings.ESL_RELAY_LINGER_MS = 0
    pacing = paced([*steady(every=0.001), (101.0, 100)])

    assert pacing.delay(now=101.0) == 0.0


def test_events_committed_one_at_a_time_each_get_their_own_pass(relay_loop: RunningRelay, organization) -> None:
    for _ in range(3):
        commit_events(organization, 1)
        wait_until(relayed, message="relayed")

    assert relay_loop.events_passes() == [1, 1, 1]


def test_under_load_the_commits_of_the_linger_share_one_pass(relay_loop: RunningRelay, organization) -> None:
    commit_events(organization, 2)  # a pass that finds two: commits outrun passes
    wait_until(relayed, message="relayed")

    for _ in range(3):  # three commits, each with its own notification, within the linger
        commit_events(organization, 1)
    wait_until(relayed, message="relayed")

    assert relay_loop.events_passes() == [2, 3]


def test_an_event_that_wakes_nobody_is_relayed_by_the_next_poll(relay_loop: RunningRelay, organization) -> None:
    # No active subscription: the commit sends no notification (sapien/events/outbox.py).
    commit_events(organization, 1)

    wait_until(relayed, message="relayed by a poll")
    assert relay_loop.events_passes() == [1]


def test_wake_up_requests_arriving_faster_than_the_poll_hold_no_pass_back(
    relay_loop_polling_slowly, organization
) -> None:
    relay = relay_loop_polling_slowly
    requesting = threading.Event()
    relayed_while_requesting: list[bool] = []

    def request_wake_ups() -> None:  # each request ends the relay's wait before its poll would
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (requesting.is_set() and relayed()):
            wakeup_request(WakeUp(DELIVER_DUE, count=1))
            time.sleep(0.05)
        relayed_while_requesting.append(relayed())
        connection.close()

    requester = threading.Thread(target=request_wake_ups)
    requester.start()
    wait_until(lambda: len(relay.published) >= 3, message="wake-up requests heard")
    commit_events(organization, 1)  # no active subscription: no notification of its own
    requesting.set()
    requester.join()

    assert relayed_while_requesting == [True]


def test_the_wake_ups_the_web_asks_for_are_published(relay_loop: RunningRelay) -> None:
    wakeup_request(WakeUp(DELIVER_DUE, count=2))

    wait_until(lambda: bool(relay_loop.published), message="published")
    assert relay_loop.published == [WakeUp(DELIVER_DUE, count=2)]


def test_a_linger_over_a_second_is_refused_at_start() -> None:
    def start(linger: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sapien.settings", "ESL_RELAY_LINGER_MS": linger}
        command = [sys.executable, "-c", "import django; django.setup()"]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)

    refused, accepted = start("1001"), start("1s")

    assert refused.returncode == 1 and "ESL_RELAY_LINGER_MS must be at most 1000" in refused.stderr
    assert accepted.returncode == 0, accepted.stderr
