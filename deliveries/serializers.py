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


class DurationQuantilesSerializer(serializers.Serializer):
    p50 = serializers.IntegerField(allow_null=True, help_text="Estimated from a histogram; null without attempts.")
    p95 = serializers.IntegerField(allow_null=True)


class OutcomeCountsSerializer(serializers.Serializer):
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()


class AttemptCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    failed = serializers.IntegerField()


class StatsWindowSerializer(serializers.Serializer):
    since = serializers.DateTimeField(help_text="The window's start: whole hours.")
    deliveries = OutcomeCountsSerializer(help_text="Deliveries that reached a final status.")
    attempts = AttemptCountsSerializer()
    duration_ms = DurationQuantilesSerializer()


class LastFailureSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()


class HealthSerializer(serializers.Serializer):
    active = serializers.BooleanField()
    consecutive_failures = serializers.IntegerField()
    failing_since = serializers.DateTimeField(allow_null=True)
    failing_notice_after = serializers.IntegerField(help_text="Failed deliveries in a row that make it failing.")
    failing_notice_at = serializers.DateTimeField(allow_null=True)
    disable_after_failures = serializers.IntegerField()
    disables_at_earliest = serializers.DateTimeField(allow_null=True)
    disabling_near = serializers.BooleanField()
    disabled_at = serializers.DateTimeField(allow_null=True)
    disabled_reason = serializers.CharField(allow_blank=True)


class ProbeSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    next_at = serializers.DateTimeField(allow_null=True)
    sent = serializers.IntegerField()


class SubscriptionStatsSerializer(serializers.Serializer):
    """A subscription's health (``deliveries/health.py``): counts by whole hours, its run of failures, its probe."""

    subscription_id = serializers.UUIDField()
    generated_at = serializers.DateTimeField()
    last_hour = StatsWindowSerializer()
    last_day = StatsWindowSerializer()
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_failure = LastFailureSerializer(allow_null=True)
    health = HealthSerializer()
    probe = ProbeSerializer()
