from typing import Any

from rest_framework.routers import SimpleRouter

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class OptionalSlashRouter(SimpleRouter):
    """``/api/persons`` and ``/api/persons/`` both resolve; a POST is never redirected."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trailing_slash = "/?"
