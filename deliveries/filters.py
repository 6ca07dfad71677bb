import django_filters

from deliveries.models import Delivery, DeliveryStatus
from sapien.core.filters import UTCDateTimeFilter


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    event_type = django_filters.CharFilter(field_name="event__type")
    since = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Delivery
        fields = ["status", "event_type", "since", "until"]
