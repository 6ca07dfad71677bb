from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sapien.events.catalog import is_valid_pattern
from subscriptions.models import Subscription
from subscriptions.url_safety import MAX_URL_LENGTH


@extend_schema_field(OpenApiTypes.URI)
class CallbackURLField(serializers.CharField):
    """Text; ``subscriptions.url_safety`` judges the rest, so a malformed URL is an ``invalid_callback_url``."""


class SubscriptionSerializer(serializers.ModelSerializer):
    callback_url = CallbackURLField(max_length=MAX_URL_LENGTH)
    events = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False, max_length=100)
    secret = serializers.CharField(write_only=True, required=False, min_length=16, max_length=256)

    class Meta:
        model = Subscription
        fields = [
            "id", "callback_url", "events", "secret", "active", "description",
            "disabled_reason", "disabled_at", "consecutive_failures", "previous_secret_expires_at",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "id", "disabled_reason", "disabled_at", "consecutive_failures", "previous_secret_expires_at",
            "created_at", "updated_at",
        ]  # fmt: skip

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


class RotateSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(required=False, min_length=16, max_length=256)


class RotatedSecretSerializer(serializers.Serializer):
    secret = serializers.CharField()
    previous_secret_expires_at = serializers.DateTimeField()
