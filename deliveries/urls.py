from django.urls import path, re_path

from deliveries.views import (
    BlobView,
    DeliveryDetailView,
    DeliveryListView,
    RedeliverView,
    ReplayView,
    SubscriptionStatsView,
)
from sapien.core.routers import UUID_PATTERN as UUID

urlpatterns = [
    re_path(rf"^subscriptions/(?P<subscription_id>{UUID})/deliveries/?$", DeliveryListView.as_view(),
            name="delivery-list"),
    re_path(rf"^subscriptions/(?P<subscription_id>{UUID})/deliveries/(?P<delivery_id>{UUID})/?$",
            DeliveryDetailView.as_view(), name="delivery-detail"),
    re_path(rf"^subscriptions/(?P<subscription_id>{UUID})/deliveries/(?P<delivery_id>{UUID})/redeliver/?$",
            RedeliverView.as_view(), name="delivery-redeliver"),
    re_path(rf"^subscriptions/(?P<subscription_id>{UUID})/replay/?$", ReplayView.as_view(), name="subscription-replay"),
    re_path(rf"^subscriptions/(?P<subscription_id>{UUID})/stats/?$", SubscriptionStatsView.as_view(),
            name="subscription-stats"),
    path("blobs/<uuid:blob_id>", BlobView.as_view(), name="blob-detail"),
]  # fmt: skip
