"""What the OAuth endpoints refuse before django-oauth-toolkit reads a single parameter.

PostgreSQL text cannot hold NUL and UTF-8 cannot hold an unpaired surrogate: a client or
user lookup with either fails in the driver, a 500. Every parameter (query and form, names
and values) and the client credentials of an ``Authorization: Basic`` header are checked, so
that no lookup, hash or write ever sees such a value. A value longer than
``MAX_PARAMETER_LENGTH`` is refused too: no client id, username, secret, code, state or
redirect URI is that long, and hashing or storing it would cost for nothing.
"""

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus

from django.conf import settings
from django.http import HttpRequest

MAX_PARAMETER_LENGTH = 4096


@dataclass(frozen=True)
class Refusal:
    parameter: str | None  # None when the culprit is a parameter's name or the Basic credentials
    description: str


def refused_character(value: str) -> str | None:
    """What in ``value`` PostgreSQL cannot store (``"NUL"``, ``"an unpaired surrogate"``), or None."""
    if "\x00" in value:
        return "NUL"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "an unpaired surrogate"
    return None


def basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    """The client id and secret of an ``Authorization: Basic`` header, decoded as django-oauth-toolkit does.

    RFC 6749 §2.3.1: both are form-encoded before the Base64. None when there is no such
    header or it does not decode; django-oauth-toolkit then refuses the client itself.
    """
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded).decode(request.encoding or settings.DEFAULT_CHARSET)
    except (binascii.Error, UnicodeDecodeError, LookupError):
        return None
    client_id, separator, client_secret = decoded.partition(":")
    if not separator:
        return None
    return unquote_plus(client_id), unquote_plus(client_secret)


def refused_parameter(request: HttpRequest, *, basic_auth: bool) -> Refusal | None:
    """The first parameter of ``request`` that must not reach the OAuth server, with why; None if none.

    ``basic_auth`` checks the client credentials of the ``Authorization`` header too (the
    token and revocation endpoints read them; the authorization endpoint does not).
    """
    for parameters in (request.GET, request.POST):
        for name, values in parameters.lists():
            if (refused := refused_character(name)) is not None:
                return Refusal(None, f"A parameter name holds a character that is not allowed ({refused}).")
            if len(name) > MAX_PARAMETER_LENGTH:
                return Refusal(None, f"A parameter name is longer than {MAX_PARAMETER_LENGTH} characters.")
            for value in values:
                if (refused := refused_character(value)) is not None:
                    return Refusal(name, f"The {name} parameter holds a character that is not allowed ({refused}).")
                if len(value) > MAX_PARAMETER_LENGTH:
                    return Refusal(name, f"The {name} parameter is longer than {MAX_PARAMETER_LENGTH} characters.")
    credentials = basic_credentials(request) if basic_auth else None
    for value in credentials or ():
        if (refused := refused_character(value)) is not None:
            return Refusal(None, f"The client credentials hold a character that is not allowed ({refused}).")
        if len(value) > MAX_PARAMETER_LENGTH:
            return Refusal(None, f"The client credentials are longer than {MAX_PARAMETER_LENGTH} characters.")
    return None
