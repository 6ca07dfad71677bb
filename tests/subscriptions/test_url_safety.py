"""Every internal range is refused, literal or behind a name (CONTRACT §8)."""

import ipaddress

import pytest

from subscriptions.url_safety import UnsafeCallbackURL, check_callback_url, is_internal_address


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.0.1", "169.254.169.254",
        "100.64.0.1", "100.127.255.255", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fd00::1",
        "fc00::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:0a00:0001::1", "ff02::1",
    ],
)  # fmt: skip
def test_internal_addresses(address: str) -> None:
    assert is_internal_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert not is_internal_address(ipaddress.ip_address(address))


@pytest.mark.django_db
def test_a_name_that_resolves_to_any_internal_address_is_refused(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from subscriptions import url_safety

    answers = [(2, 1, 6, "", ("93.184.215.14", 443)), (10, 1, 6, "", ("::1", 443, 0, 0))]
    monkeypatch.setattr(url_safety.socket, "getaddrinfo", lambda *a, **kw: answers)

    with pytest.raises(UnsafeCallbackURL, match="internal address"):
        check_callback_url("https://mixed.example.com/hook")


def test_urls_with_credentials_are_refused() -> None:
    with pytest.raises(UnsafeCallbackURL, match="credentials"):
        check_callback_url("https://user:pass@hooks.example.com/")
