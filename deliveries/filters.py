import django_filters

from deliveries.models import Delivery, DeliveryStatus
from sapien.core.filters import FilterSet, UTCDateTimeFilter


class DeliveryFilter(FilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    # The event's type and time, as copied onto the delivery: each filter is served by an index of the log.
    event_type = django_filters.CharFilter(field_name="event_type")
    since = UTCDateTimeFilter(field_name="event_created_at", lookup_expr="gte")
    until = UTCDateTimeFilter(field_name="event_created_at", lookup_expr="lt")

    class Meta:
        model = Delivery
        fields = ["status", "event_type", "since", "until"]
