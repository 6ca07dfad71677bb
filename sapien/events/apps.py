from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "sapien.events"
    label = "events"
    verbose_name = "Events"
