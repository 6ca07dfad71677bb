"""Content negotiation: DRF's, with the answer to what nearly every client sends found without parsing."""

from collections.abc import Iterable
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class ContentNegotiation(DefaultContentNegotiation):
    """No ``Accept``, ``*/*`` or exactly the first renderer's media type choose the first renderer, as DRF would
    after parsing the header into media types and ranking them (a fiftieth of a create's CPU). Anything else, a
    format suffix or a ``?format=`` included, is DRF's to decide."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str] | Any:
        accept = request.META.get("HTTP_ACCEPT", "*/*")
        renderers = list(renderers)
        if renderers and format_suffix is None and self.settings.URL_FORMAT_OVERRIDE not in request.query_params:
            first = renderers[0]
            if accept == "*/*" or accept == first.media_type:
                return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
