"""Signals the core sends for other apps to act on, so that core imports none of them."""

from django.dispatch import Signal

# Sent after a request made with a token issued to a user, as activity of that user: ``user``, ``token``.
user_token_used = Signal()
