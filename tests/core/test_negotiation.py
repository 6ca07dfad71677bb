"""Content negotiation answers as DRF's own does, whatever the client accepts."""

import pytest
from django.http import Http404
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from sapien.core.negotiation import ContentNegotiation
from sapien.core.renderers import JSONRenderer

ACCEPTS = [
    None, "*/*", "application/json", "application/json; indent=2", "application/*", "text/html",
    "text/html, application/json;q=0.9", "application/json, text/plain", "", "application/json ", "*/*; q=0.1",
]  # fmt: skip


def _answer(negotiation, accept, query, renderers, suffix=None):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get("/api/persons" + query, **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
    except NotAcceptable:
        return "406"
    except Http404:  # a ?format= no renderer has
        return "404"
    return type(renderer), media_type


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=api", "?page_size=2"])
@pytest.mark.parametrize("renderer_classes", [[JSONRenderer], [JSONRenderer, BrowsableAPIRenderer]])
def test_every_accept_header_chooses_what_drf_would(accept, query, renderer_classes) -> None:
    renderers = [renderer() for renderer in renderer_classes]

    ours = _answer(ContentNegotiation(), accept, query, renderers)

    assert ours == _answer(DefaultContentNegotiation(), accept, query, renderers)


def test_a_format_suffix_is_drfs_to_decide() -> None:
    renderers = [JSONRenderer(), BrowsableAPIRenderer()]

    ours = _answer(ContentNegotiation(), "*/*", "", renderers, suffix="api")

    assert ours == (BrowsableAPIRenderer, "text/html")


def test_the_api_answers_json_to_the_usual_accept_headers_and_406_to_others(api) -> None:
    for accept in ("*/*", "application/json", "application/*"):
        response = api.get("/api/persons", HTTP_ACCEPT=accept)
        assert (response.status_code, response["Content-Type"]) == (200, "application/json")
    assert api.get("/api/persons", HTTP_ACCEPT="text/html").status_code == 406
