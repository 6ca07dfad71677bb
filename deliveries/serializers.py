from typing import Any

from rest_framework import serializers

from deliveries.models import Delivery, DeliveryAttempt


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "started_at", "duration_ms", "status_code", "succeeded", "error", "response_excerpt"]


class DeliverySerializer(serializers.ModelSerializer):
    """A delivery as the log shows it: its event and every attempt. Never a secret."""

    subscription_id = serializers.UUIDField(read_only=True)
    event = serializers.SerializerMethodField()
    attempts = AttemptSerializer(many=True, read_only=True, source="attempt_list")  # selectors.with_events_and_attempts

    class Meta:
        model = Delivery
        fields = [
            "id", "subscription_id", "status", "attempt_count", "next_attempt_at", "last_status_code",
            "last_error", "created_at", "completed_at", "event", "attempts",
        ]  # fmt: skip

    def get_event(self, delivery: Delivery) -> dict[str, Any]:
        event = delivery.event
        return {"id": str(event.id), "type": event.type, "created_at": event.created_at, "payload": event.payload}
