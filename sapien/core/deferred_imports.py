"""Modules loaded when first used rather than when first imported.

django-oauth-toolkit imports jwcrypto's key, signature and token modules as its models load, and with them
cryptography: about 10 MB of every Sapien process (the web's, the relay's, each Celery process's), though only
OpenID Connect and RSA-signed tokens, which Sapien leaves off, ever call them. Each of ``JWCRYPTO`` stands in
``sys.modules`` as a ``DeferredModule`` until something reads one of its attributes; that read imports the real
module, which takes its place in ``sys.modules``, and the stand-in takes on its namespace, so names already bound to
the stand-in (``from jwcrypto import jwk``) work as the module itself.
"""

import importlib
import sys
import types
from typing import Any

JWCRYPTO = ("jwcrypto.jwk", "jwcrypto.jws", "jwcrypto.jwt")


class DeferredModule(types.ModuleType):
    """A module not imported yet: the first attribute it lacks imports it."""

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.load(), attribute)

    def load(self) -> types.ModuleType:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return module


def defer_imports(*names: str) -> None:
    """Stands a ``DeferredModule`` in for each of ``names`` not imported yet."""
    for name in names:
        sys.modules.setdefault(name, DeferredModule(name))
