from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sapien.events.catalog import EVENT_TYPES, is_valid_pattern
from subscriptions.custom_headers import MAX_HEADERS, InvalidHeaders, checked_headers, header_names
from subscriptions.models import MAX_IN_FLIGHT, MAX_RATE_LIMIT_PER_SECOND, Subscription
from subscriptions.payload_filter import (
    MAX_FILTER_BYTES,
    MAX_FILTER_DEPTH,
    InvalidFilter,
    checked_filter,
    checked_sample_event,
)
from subscriptions.url_safety import MAX_URL_LENGTH


@extend_schema_field(OpenApiTypes.URI)
class CallbackURLField(serializers.CharField):
    """Text; ``subscriptions.url_safety`` judges the rest, so a malformed URL is an ``invalid_callback_url``."""


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": MAX_HEADERS})
class HeadersField(serializers.Field):
    """Header names to values, judged by ``subscriptions.custom_headers``: strings only, nothing coerced."""

    def to_internal_value(self, data: Any) -> dict[str, str]:
        try:
            return checked_headers(data)
        except InvalidHeaders as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value: Any) -> Any:
        raise AssertionError("headers are write-only")  # never rendered: their values are secrets


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "additionalProperties": True,
        "description": (
            "A JSON document the event must contain (PostgreSQL jsonb @>), e.g. "
            '{"data": {"current_status": "busy"}}; null or {}: no filter. At most '
            f"{MAX_FILTER_DEPTH} levels deep and {MAX_FILTER_BYTES} bytes of JSON."
        ),
    }
)
class PayloadFilterField(serializers.Field):
    """The payload filter, judged by ``subscriptions.payload_filter``: an object, nothing coerced."""

    def to_internal_value(self, data: Any) -> dict[str, Any] | None:
        try:
            return checked_filter(data)
        except InvalidFilter as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value: Any) -> Any:
        return value


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` only: a setting that changes delivery semantics takes no "yes" or 1."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError("Must be true or false.", code="invalid")
        return data


class StrictUUIDField(serializers.UUIDField):
    """A UUID written as text: DRF would also read an integer (or true) as one."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a UUID, as a string.", code="invalid")
        return super().to_internal_value(data)


class StrictLimitField(serializers.IntegerField):
    """A receiver limit: a JSON integer from 1 to ``max_value``, or null for none; no "5", 5.0 or true."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, allow_null=True, required=False, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError("Must be a whole number (a JSON integer) or null.", code="invalid")
        return super().to_internal_value(data)


class SubscriptionSerializer(serializers.ModelSerializer):
    callback_url = CallbackURLField(max_length=MAX_URL_LENGTH)
    events = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False, max_length=100)
    secret = serializers.CharField(write_only=True, required=False, min_length=16, max_length=256)
    # Sent with every attempt; the values are secrets, so only the names are ever shown (``header_names``).
    headers = HeadersField(write_only=True, required=False)
    header_names = serializers.SerializerMethodField()
    filter = PayloadFilterField(required=False, allow_null=True)
    ordered = StrictBooleanField(
        required=False,
        help_text="Per ordering key (the user of availability and presence events, the entity of entity events), "
        "one delivery at a time, in event order; the next waits until the previous one succeeds or finally fails.",
    )
    probe_when_disabled = StrictBooleanField(
        required=False,
        help_text="While the subscription is disabled, send it a signed system.ping at a backing-off interval and "
        "announce system.subscription.recovered when its receiver answers.",
    )
    rate_limit_per_second = StrictLimitField(
        max_value=MAX_RATE_LIMIT_PER_SECOND,
        help_text="At most this many deliveries start in any one second, on all workers together; null: no limit.",
    )
    max_in_flight = StrictLimitField(
        max_value=MAX_IN_FLIGHT,
        help_text="At most this many requests open at once, on all workers together; null: the server's default "
        "(ESL_DEFAULT_MAX_IN_FLIGHT, 100 unless set).",
    )

    class Meta:
        model = Subscription
        fields = [
            "id", "callback_url", "events", "secret", "active", "description", "headers", "header_names", "filter",
            "ordered", "rate_limit_per_second", "max_in_flight", "throttled_until", "disabled_reason", "disabled_at",
            "consecutive_failures", "previous_secret_expires_at",
            "probe_when_disabled", "probe_next_at", "probes_sent", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "id", "throttled_until", "disabled_reason", "disabled_at", "consecutive_failures",
            "previous_secret_expires_at", "probe_next_at", "probes_sent", "created_at", "updated_at",
        ]  # fmt: skip
        extra_kwargs = {
            "throttled_until": {
                "help_text": "Set when the receiver answered 429 or 503 with Retry-After: no delivery of this "
                "subscription starts before then. Null, or in the past, when not held back."
            }
        }

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_header_names(self, subscription: Subscription) -> list[str]:
        return header_names(subscription.headers)

    def validate_events(self, value: list[str]) -> list[str]:
        unknown = [pattern for pattern in value if not is_valid_pattern(pattern)]
        if unknown:
            raise serializers.ValidationError(f"Unknown event types: {', '.join(unknown)}.")
        return list(dict.fromkeys(value))


class CreatedSubscriptionSerializer(SubscriptionSerializer):
    """The answer to a creation: the only time the secret is shown."""

    secret = serializers.CharField(read_only=True)


class PingSerializer(serializers.Serializer):
    event_id = serializers.UUIDField()
    type = serializers.CharField()


class ExampleSendSerializer(serializers.Serializer):
    """``POST …/test``: which type's example to send (GET /api/v1/event-types); ``system.ping`` by default."""

    type = serializers.ChoiceField(
        choices=sorted(EVENT_TYPES),
        default="system.ping",
        error_messages={"invalid_choice": 'Unknown event type "{input}": GET /api/v1/event-types lists them.'},
    )


@extend_schema_field({"type": "object", "additionalProperties": True})
class SampleEventField(serializers.JSONField):
    """A sample event's body: any JSON object ``jsonb`` can hold."""


class FilterTestSerializer(serializers.Serializer):
    """A filter (absent: the subscription's own; null: none) tested against an event or a retained event's id."""

    filter = PayloadFilterField(required=False, allow_null=True)
    event = SampleEventField(required=False, help_text="A sample event: the JSON body a receiver would get.")
    event_id = StrictUUIDField(required=False, help_text="Or a retained event of this organization.")

    def validate_event(self, value: Any) -> dict[str, Any]:
        try:
            return checked_sample_event(value)
        except InvalidFilter as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("event" in attrs) == ("event_id" in attrs):
            raise serializers.ValidationError({"event": ["Give either event or event_id, not both nor neither."]})
        return attrs


class FilterTestResultSerializer(serializers.Serializer):
    matches = serializers.BooleanField(help_text="Whether the relay would let this event through the filter.")
    filter = PayloadFilterField(allow_null=True, help_text="The filter that was tested.")


class RotateSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(required=False, min_length=16, max_length=256)


class RotatedSecretSerializer(serializers.Serializer):
    secret = serializers.CharField()
    previous_secret_expires_at = serializers.DateTimeField()
