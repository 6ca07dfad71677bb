"""jwcrypto's modules (and cryptography with them) load when first used, not when django-oauth-toolkit imports them."""

import importlib
import json
import sys
import uuid

import pytest

from sapien.core.deferred_imports import DeferredModule, defer_imports
from tests.support.processes import python_json

# What the relay and a Celery worker load: Django's apps (django-oauth-toolkit's models among them), the Celery app,
# the relay and the tasks.
WORKER_IMPORTS = """
import json, sys
import django
django.setup()
import sapien.celery, deliveries.relay, deliveries.tasks
print(json.dumps(sorted(name for name in sys.modules if name.startswith("cryptography.hazmat"))))
"""


@pytest.mark.parametrize("broker", ["redis://127.0.0.1:9/0", "amqp://guest:guest@127.0.0.1:9//"])
def test_the_relay_and_the_workers_load_no_cryptography(db, broker: str) -> None:
    assert python_json(WORKER_IMPORTS, broker) == []


def test_a_deferred_module_loads_when_an_attribute_is_first_read(tmp_path, monkeypatch) -> None:
    name = f"deferred_probe_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    defer_imports(name)
    try:
        stand_in = importlib.import_module(name)  # as `import name` or `from package import name` would
        assert isinstance(stand_in, DeferredModule) and "VALUE" not in vars(stand_in)

        assert stand_in.VALUE == 42

        assert sys.modules[name] is not stand_in and sys.modules[name].VALUE == 42
        assert vars(stand_in)["VALUE"] == 42  # the stand-in now holds the module's names itself
    finally:
        sys.modules.pop(name, None)


def test_a_module_already_imported_is_left_as_it_is() -> None:
    real = sys.modules["json"]
    defer_imports("json")
    assert sys.modules["json"] is real


def test_django_oauth_toolkit_gets_the_real_jwcrypto_when_it_uses_it() -> None:
    from oauth2_provider.models import jwk

    key = jwk.JWK.generate(kty="oct", size=256)

    assert type(key).__module__ == "jwcrypto.jwk"
    assert json.loads(key.export())["kty"] == "oct"
