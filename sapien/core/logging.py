"""JSON log lines carrying the correlation id of the request or task that wrote them, and no credentials.

``RedactCredentialsFilter`` sits on the console handler (settings ``LOGGING``) and on
gunicorn's own handlers (``sapien.gunicorn_conf``): every record, from any logger,
loses the credentials in its URLs before a formatter sees it.
"""

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from sapien.core.context import _current

# Attributes every LogRecord has; anything else was passed in ``extra`` and is kept.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "correlation_id"}

REDACTED = "[redacted]"

# Query parameters that carry a credential: blob link signatures, OAuth tokens, codes and client
# secrets, passwords, and S3 presigned URLs (X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token).
# The name must start the query or follow a separator, plain or percent-encoded (a URL inside a URL).
_CREDENTIAL_NAME = r"[\w.\-]*(?:signature|token|secret|password|passwd|credential)|code|sig|key|api_?key"
_QUERY_CREDENTIAL = re.compile(rf"(?i)((?:^|[?&;]|%3F|%26)(?:{_CREDENTIAL_NAME})(?:=|%3D))(?:(?!%26)[^&;\s\"'#<>\\])*")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s/@:]*:)[^\s/@]+@")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[\w\-.~+/]+=*")


def redact_credentials(text: str) -> str:
    """``text`` with the value of every credential query parameter, URL password and bearer token replaced.

    Idempotent. Other query parameters (``expires``, ``cursor``, ...) are kept, for debugging.
    """
    text = _QUERY_CREDENTIAL.sub(rf"\1{REDACTED}", text)
    text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
    return _BEARER.sub(rf"\1{REDACTED}", text)


def _redacted(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_credentials(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    # Anything else is rendered as text by the formatters: Django's ``request`` extra renders
    # as ``<WSGIRequest: GET '/path?query'>``, its full path with the query string.
    return redact_credentials(str(value))


class RedactCredentialsFilter(logging.Filter):
    """Redacts the message (rendered with its arguments), the extras, the exception and the stack of a record.

    It changes the record itself, so handlers that run after this one see it redacted too; the
    message is rendered once, so arguments of any type are covered. Idempotent: a record may
    pass several handlers that carry it.
    """

    _exception_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            message = str(record.msg)  # arguments that do not fit the message: keep neither unredacted
        record.msg, record.args = redact_credentials(message), ()
        for key, value in list(vars(record).items()):
            if key not in _STANDARD:
                setattr(record, key, _redacted(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_credentials(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_credentials(record.stack_info)
        return True


class CorrelationIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        record.correlation_id = context.correlation_id if context is not None else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "correlation_id", None):
            line["correlation_id"] = record.correlation_id  # type: ignore[attr-defined]
        line.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info or record.exc_text:
            line["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(line, default=str)
