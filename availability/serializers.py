from typing import Any

from rest_framework import serializers

from availability.models import Activity, AvailabilityProfile, DeviceType, Status, UserAvailability
from availability.schedules import is_valid_timezone, parse_hhmm
from availability.services.connections import SESSION_PREFIX


class AvailabilitySerializer(serializers.Serializer):
    """A user's availability as the API reads it (docs/availability.md, "A user's availability")."""

    user_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Status.choices)
    previous_status = serializers.CharField(allow_null=True)
    custom_message = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    changed_at = serializers.DateTimeField(allow_null=True)
    trigger = serializers.CharField(allow_null=True)
    online = serializers.BooleanField()

    def to_representation(self, instance: UserAvailability) -> dict[str, Any]:
        return {
            "user_id": str(instance.user_id),
            "status": instance.status,
            "previous_status": instance.previous_status or None,
            "custom_message": instance.custom_message or None,
            "expires_at": serializers.DateTimeField().to_representation(instance.expires_at)
            if instance.expires_at
            else None,
            "changed_at": serializers.DateTimeField().to_representation(instance.changed_at)
            if instance.changed_at
            else None,
            "trigger": instance.trigger or None,
            "online": instance.online,
        }


class AvailabilityListSerializer(serializers.Serializer):
    """``GET /availability?user_ids=…``: the shape of every list, in one page, since the ids asked bound it (≤100)."""

    next = serializers.CharField(allow_null=True, help_text="Always null: one page holds every user asked for.")
    previous = serializers.CharField(allow_null=True, help_text="Always null.")
    results = AvailabilitySerializer(many=True)


class StatusDeclarationSerializer(serializers.Serializer):
    """``PUT /availability/me`` and the override: a status, an optional message (256 characters) and expiry."""

    status = serializers.ChoiceField(choices=Status.choices)
    custom_message = serializers.CharField(max_length=256, required=False, allow_blank=True, default="")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class HeartbeatSerializer(serializers.Serializer):
    connection_id = serializers.CharField(max_length=128)

    def validate_connection_id(self, value: str) -> str:
        if value.startswith(SESSION_PREFIX):
            raise serializers.ValidationError(f"Must not start with '{SESSION_PREFIX}' (reserved for OAuth sessions).")
        return value

    device_type = serializers.ChoiceField(choices=DeviceType.choices)
    activity = serializers.ChoiceField(choices=Activity.choices)
    location = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class DisconnectSerializer(serializers.Serializer):
    connection_id = serializers.CharField(max_length=128)


class RuleSerializer(serializers.Serializer):
    """One window of a profile. A rule is always given whole: a PATCH replaces the rules, it does not edit them."""

    days_of_week = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), allow_empty=False, max_length=7
    )
    start_time = serializers.CharField()
    end_time = serializers.CharField()
    status = serializers.ChoiceField(choices=[s for s in Status.choices if s[0] != Status.OFFLINE])

    def validate_start_time(self, value: str) -> str:
        return _hhmm(value)

    def validate_end_time(self, value: str) -> str:
        return _hhmm(value)

    def validate_days_of_week(self, value: list[int]) -> list[int]:
        return sorted(set(value))

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if self.parent is None:
            return super().to_internal_value(data)
        # Nested, its fields would follow the root's ``partial`` and skip the missing ones on a PATCH:
        # validated on its own instead, every field is required as on creation.
        whole = RuleSerializer(data=data)
        whole.is_valid(raise_exception=True)
        return dict(whole.validated_data)


def _hhmm(value: str) -> str:
    try:
        parse_hhmm(value)
    except ValueError as exc:
        raise serializers.ValidationError("Must be a time as HH:MM (00:00 to 23:59).") from exc
    return value


class ProfileSerializer(serializers.ModelSerializer):
    rules = RuleSerializer(many=True)
    user_id = serializers.UUIDField(required=False)

    class Meta:
        model = AvailabilityProfile
        fields = ["id", "user_id", "name", "timezone", "rules", "active", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_timezone(self, value: str) -> str:
        if not is_valid_timezone(value):
            raise serializers.ValidationError("Must be an IANA time zone name, such as Europe/Paris.")
        return value

    def validate_rules(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(value) > 50:
            raise serializers.ValidationError("At most 50 rules.")
        return [dict(rule) for rule in value]
