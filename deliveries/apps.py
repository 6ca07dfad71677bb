from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    name = "deliveries"

    def ready(self) -> None:
        # Every process refuses at start the settings under which retention could drop what is still owed.
        from deliveries.retention import check_retention_outlasts_retries  # models are loaded only now

        check_retention_outlasts_retries()
