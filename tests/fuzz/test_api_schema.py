"""Schemathesis against /api/schema/ with real tokens, every check on: no 5xx, every response as the schema says.

Where the API takes or refuses more than its schema says, on purpose, ``tests/fuzz/leniencies.py`` names
the rule; no other failure is forgiven.

One run in two sizes, chosen by ``FUZZ_EXAMPLES``:

- unset (``make test``): a few examples per operation, derandomized and without an example database, so
  the same commit always gives the same answer;
- a number (``make fuzz``): that many random examples per operation, then as many stateful scenarios
  that chain operations through the links schemathesis infers from the schema (a created object's id
  feeds the operations on it); ``--hypothesis-seed=N`` repeats a run's choices.
"""

import json
import os
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.core.failures import FailureGroup

from sapien.core.models import Tier, User
from sapien.wsgi import application
from tests.fuzz.leniencies import explained

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 0)

if FUZZ_EXAMPLES:
    examples = settings(
        max_examples=FUZZ_EXAMPLES, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
else:
    examples = settings(
        max_examples=8, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )


def published_schema() -> dict[str, Any]:
    """The schema /api/schema/ serves, generated without a request (no database at collection time)."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


# A public IP literal needs no DNS lookup, so the callback URL check passes on loopback-only machines.
SUBSCRIPTION_EXAMPLE = {"callback_url": "https://93.184.216.34/webhooks", "events": ["person.*"], "description": "fuzz"}
PROFILE_EXAMPLE = {
    "name": "Working hours",
    "timezone": "Europe/Paris",
    "rules": [{"days_of_week": [0, 1, 2, 3, 4], "start_time": "09:00", "end_time": "17:00", "status": "busy"}],
}
SUBSCRIPTION_OPERATIONS = {
    "v1_subscriptions_retrieve": "id",
    "v1_subscriptions_partial_update": "id",
    "v1_subscriptions_destroy": "id",
    "v1_subscriptions_rotate_secret_create": "id",
    "v1_subscriptions_test_create": "id",
    "v1_subscriptions_deliveries_list": "subscription_id",
    "v1_subscriptions_replay_create": "subscription_id",
}


def with_scenario_aids(raw: dict[str, Any]) -> dict[str, Any]:
    """The published schema plus what lets generated scenarios create the objects the other operations act on.

    A valid example for the two bodies random data rarely gets right (a safe callback URL, an IANA zone),
    and the links from a created subscription, which link inference misses (its answer is another schema).
    """
    subscriptions = raw["paths"]["/api/v1/subscriptions/"]["post"]
    subscriptions["requestBody"]["content"]["application/json"]["example"] = SUBSCRIPTION_EXAMPLE
    subscriptions["responses"]["201"]["links"] = {
        operation_id: {"operationId": operation_id, "parameters": {parameter: "$response.body#/id"}}
        for operation_id, parameter in SUBSCRIPTION_OPERATIONS.items()
    }
    profiles = raw["paths"]["/api/v1/availability/profiles/"]["post"]
    profiles["requestBody"]["content"]["application/json"]["example"] = PROFILE_EXAMPLE
    return raw


schema = schemathesis.openapi.from_dict(with_scenario_aids(published_schema()))
schema.app = application


@pytest.fixture(autouse=True)
def _one_connection_for_the_test(db):
    """As Django's test client does: keep the test's connection (and transaction) across requests."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def auth_headers(make_organization, make_token) -> dict[str, str]:
    """A user token with every scope, of an enterprise organization (no plan limit ends a long run early)."""
    organization = make_organization("Fuzzed", tier=Tier.ENTERPRISE)
    user = User.objects.create_user("fuzz@example.com", "correct-horse", organization=organization)
    token = make_token(organization, user=user)
    return {"Authorization": f"Bearer {token.token}"}


def validate(case: schemathesis.Case, response: schemathesis.Response, headers: dict[str, str], **kwargs: Any) -> None:
    """Every check; a failure stands unless it is one of the API's documented departures from its schema."""
    try:
        # The token is ours, not generated: said so, the auth checks probe it instead of flagging it.
        case.validate_response(response, headers=headers, transport_kwargs={"headers": headers}, **kwargs)
    except FailureGroup as group:
        if not all(explained(failure, case, response) for failure in group.exceptions):
            raise


@schema.parametrize()
@examples
def test_the_api_never_fails_and_keeps_to_its_schema(case, auth_headers) -> None:
    validate(case, case.call(headers=auth_headers), auth_headers)


@pytest.mark.skipif(not FUZZ_EXAMPLES, reason="stateful scenarios run in `make fuzz` (FUZZ_EXAMPLES)")
def test_chained_operations_never_fail_and_keep_to_the_schema(auth_headers) -> None:
    class Scenarios(schema.as_state_machine()):  # type: ignore[misc]
        """Each scenario starts from the same database: what one creates is rolled back before the next.

        Hypothesis replays a failing scenario to shrink it; left in place, the objects of earlier scenarios
        would make the replay take another path.
        """

        def setup(self) -> None:
            self.savepoint = transaction.savepoint()

        def teardown(self) -> None:
            transaction.savepoint_rollback(self.savepoint)
            super().teardown()

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": auth_headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            validate(case, response, auth_headers, additional_checks=additional_checks, recorder=self.recorder)

    Scenarios.run(
        settings=settings(
            max_examples=FUZZ_EXAMPLES,
            database=None,
            deadline=None,
            stateful_step_count=10,
            suppress_health_check=list(HealthCheck),
        )
    )
