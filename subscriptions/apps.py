from django.apps import AppConfig

# An event not addressed to a subscription may be received when its organization has an active subscription
# (one probe of subscription_org_active_idx): only then does it wake the relay (sapien/events/outbox.py).
RECEIVABLE_SQL = """EXISTS (
    SELECT 1 FROM subscriptions_subscription s WHERE s.organization_id = %(organization_id)s AND s.active
)"""


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"

    def ready(self) -> None:
        from sapien.events.outbox import receivable_when

        receivable_when(RECEIVABLE_SQL)
