"""What a refused request must leave as it was: every row the platform keeps."""

from typing import Any

from django.apps import apps

APP_LABELS = ["core", "oauth2_provider", "events", "entities", "subscriptions", "deliveries", "availability"]


def all_rows() -> dict[str, list[dict[str, Any]]]:
    """Every row of every model of the platform (the outbox included), by model, in primary-key order."""
    return {
        model._meta.label: list(model._default_manager.order_by("pk").values())
        for label in APP_LABELS
        for model in apps.get_app_config(label).get_models()
    }
