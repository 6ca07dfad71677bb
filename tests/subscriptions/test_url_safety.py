"""Every internal range is refused, literal or behind a name, in every spelling (docs/configuration.md, "Callback URLs and SSRF").

No test here sends a request, and every name resolves to loopback (``tests.support.loopback_dns``).
"""

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from subscriptions.internal_addresses import embedded_ipv4, is_internal_address
from subscriptions.models import Subscription
from subscriptions.url_safety import UnsafeCallbackURL, check_callback_url, parse_callback_url

PUBLIC_LITERAL_URL = "https://93.184.215.14/hook"  # an IP literal: checked without resolving anything


@pytest.fixture
def private_callbacks_off(settings):
    settings.ESL_ALLOW_PRIVATE_CALLBACKS = False
    return settings


# --- The one rule: is_internal_address ------------------------------------------------------------

INTERNAL = [
    # IPv4 ranges
    "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.0.1", "169.254.169.254",
    "100.64.0.1", "100.127.255.255", "0.0.0.0", "224.0.0.1", "255.255.255.255",
    # IPv6 ranges: loopback, unspecified, unique-local, link-local, multicast, site-local, outside 2000::/3
    "::1", "::", "fd00::1", "fc00::1", "fe80::1", "ff02::1", "fec0::1", "feff::1", "5f00::1", "100::1",
    "2001:db8::1",
    # IPv4-mapped ::ffff:0:0/96
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    # IPv4-compatible ::/96
    "::127.0.0.1", "::10.0.0.1", "::a9fe:a9fe",
    # IPv4-translated ::ffff:0:0:0/96
    "::ffff:0:7f00:1", "::ffff:0:a9fe:a9fe", "::ffff:0:a00:1",
    # NAT64 64:ff9b::/96 and local-use NAT64 64:ff9b:1::/48 (refused whole, even around a global IPv4)
    "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b::c0a8:1",
    "64:ff9b:1::a9fe:a9fe", "64:ff9b:1::808:808", "64:ff9b:1:ffff::1",
    # 6to4 2002::/16
    "2002:0a00:0001::1", "2002:7f00:1::1", "2002:a9fe:a9fe::1",
    # Teredo 2001::/32: an internal client (obfuscated in the address), or an internal server
    "2001:0:4136:e378:8000:63bf:80ff:fffe", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:0:a00:1:8000:63bf:f7f7:f7f7",
    "2001::1",
    # The denylist of metadata and platform addresses, and their IPv6 spellings
    "169.254.170.2", "169.254.170.23", "fd00:ec2::254", "fd00:ec2::23", "fd20:ce::254", "168.63.129.16",
    "100.100.100.200", "192.0.0.192", "169.254.42.42", "169.254.0.23",
    "::ffff:168.63.129.16", "64:ff9b::a83f:8110", "2002:a83f:8110::1", "::ffff:0:a83f:8110",
]  # fmt: skip

PUBLIC = [
    "93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2606:4700::1111", "2a00:1450:4001:82a::200e",
    "::ffff:8.8.8.8",  # IPv4-mapped global
    "64:ff9b::808:808",  # NAT64 of a global IPv4, as DNS64 answers on IPv6-only networks
    "2002:808:808::1",  # 6to4 of a global IPv4
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo: global server 65.54.227.120, global client 8.8.8.8
]  # fmt: skip


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses(address: str) -> None:
    assert is_internal_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert not is_internal_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("::ffff:127.0.0.1", ["127.0.0.1"]),
        ("::127.0.0.1", ["127.0.0.1"]),
        ("::ffff:0:7f00:1", ["127.0.0.1"]),
        ("64:ff9b::a9fe:a9fe", ["169.254.169.254"]),
        ("2002:a9fe:a9fe::1", ["169.254.169.254"]),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", ["65.54.227.120", "127.0.0.1"]),
        ("2606:4700::1111", []),
    ],
)
def test_the_ipv4_address_each_embedding_carries(address: str, carried: list[str]) -> None:
    assert [str(ipv4) for ipv4 in embedded_ipv4(ipaddress.IPv6Address(address))] == carried


def test_the_denylist_takes_more_networks_from_the_settings(settings) -> None:
    settings.ESL_CALLBACK_DENYLIST = ["8.8.4.0/24", "2606:4700:4700::1001"]

    assert is_internal_address(ipaddress.ip_address("8.8.4.4"))
    assert is_internal_address(ipaddress.ip_address("::ffff:8.8.4.4"))
    assert is_internal_address(ipaddress.ip_address("2606:4700:4700::1001"))
    assert not is_internal_address(ipaddress.ip_address("8.8.8.8"))


def test_a_denylist_entry_that_is_not_an_address_is_refused_at_start() -> None:
    environment = {**os.environ, "ESL_CALLBACK_DENYLIST": "10.0.0.0/8,metadata.example"}

    started = subprocess.run(
        [sys.executable, "-c", "import sapien.settings"],
        cwd=Path(__file__).resolve().parents[2], env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert started.returncode != 0
    assert "ImproperlyConfigured: ESL_CALLBACK_DENYLIST: 'metadata.example'" in started.stderr


# --- URLs: one well-formed reading, refused before anything is resolved ---------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com:99999/x", "https://93.184.215.14:99999/x", "https://[2606:4700::1111]:99999/",
        "https://93.184.215.14:65536/", "https://93.184.215.14:0/", "https://93.184.215.14:00443/",
        "https://93.184.215.14:/", "https://[2606:4700::1111]:/", "https://93.184.215.14:abc/",
        "https://93.184.215.14:+443/", "https://93.184.215.14:-1/", "https://93.184.215.14:443:80/",
        "https://93.184.215.14:\u0664\u0664\u0663/", f"https://93.184.215.14:{'9' * 100}/",
    ],
)  # fmt: skip
def test_a_port_outside_1_to_65535_is_refused(url: str, private_callbacks_off) -> None:
    with pytest.raises(UnsafeCallbackURL, match="port must be a number from 1 to 65535"):
        check_callback_url(url)


def test_a_bad_port_is_refused_even_with_private_callbacks_allowed(settings) -> None:
    settings.ESL_ALLOW_PRIVATE_CALLBACKS = True

    with pytest.raises(UnsafeCallbackURL, match="port"):
        check_callback_url("http://127.0.0.1:99999/hook")


@pytest.mark.parametrize(
    "host",
    [
        "2130706433", "0x7f000001", "017700000001", "0177.0.0.1", "0x7f.0.0.1", "0x7f.1", "127.1", "127.0.1",
        "127.0.0.1.", "0127.0.0.1", "1.2.3.0x4", "169.254.43518", "hooks.example.123", "0x",
    ],
)  # fmt: skip
def test_other_spellings_of_ipv4_addresses_are_refused(host: str, private_callbacks_off) -> None:
    with pytest.raises(UnsafeCallbackURL, match="four decimal numbers"):
        check_callback_url(f"https://{host}/hook")


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@hooks.example.com/", "https://user@hooks.example.com/", "https://:pass@hooks.example.com/",
        "https://@hooks.example.com/", "https://hooks.example.com%2f@93.184.215.14/",
    ],
)  # fmt: skip
def test_urls_with_credentials_are_refused(url: str, private_callbacks_off) -> None:
    with pytest.raises(UnsafeCallbackURL, match="credentials"):
        check_callback_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://ex\x00ample.com/", "control characters"),
        ("https://ex\ud800ample.com/", "control characters"),
        ("https://exa\tmple.com/", "control characters"),
        ("https://hooks.example.com/a b", "spaces"),
        ("https://evil.example\\@93.184.215.14/", "backslashes"),
        ("https://hooks\u200b.example.com/", "control characters"),
        (f"https://{'a' * 64}.example.com/", "not a valid domain name"),
        ("https://a..example.com/", "not a valid domain name"),
        (f"https://{'a.' * 127}com/", "not a valid domain name"),
        ("https://hooks_1.example.com/", "not a valid domain name"),
        ("https://-hooks.example.com/", "not a valid domain name"),
        ("https://\u00fc-.example/", "not a valid domain name"),
        ("https://" + "\u00fc" * 70 + ".example/", "not a valid domain name"),
        ("https://\u00fc..example/", "not a valid domain name"),
        ("https://xn--\u00fc.example/", "not a valid domain name"),
        ("https://\u06631.example/", "not a valid domain name"),
        ("https://[fe80::1%25eth0]/", "zone"),
        ("https://[2606:4700::1111%25eth0]/", "zone"),
        ("https://[v1.x]/", "not an IPv6 address"),
        ("https://[::1/", "not a valid URL"),
        ("https://[2606:4700::1111]x/", "not a valid URL"),
        ("https://intranet/hook", "fully qualified"),
        ("https://localhost./", "is internal"),
        ("https:///hook", "absolute https URL"),
        (f"https://hooks.example.com/{'x' * 2048}", "at most 2048 characters"),
    ],
)
def test_malformed_urls_are_refused_with_a_reason(url: str, reason: str, private_callbacks_off) -> None:
    with pytest.raises(UnsafeCallbackURL, match=reason):
        check_callback_url(url)


def test_an_international_name_is_encoded_as_requests_sends_it() -> None:
    target = parse_callback_url("https://B\u00fccher.Example:8443/hook")

    assert (target.host, target.port, target.address) == ("xn--bcher-kva.example", 8443, None)


@given(st.text(alphabet=st.sampled_from("ab1:@[]%.\\/ -_x0\u00fc\u0000\ud800\u200b\u0664"), max_size=30))
@example(":99999")
@example(":abc")
@example("[::1")
@example("\u00fc-.x")
@example("[fe80::1%25eth0]")
def test_nothing_but_unsafe_callback_url_is_ever_raised(netloc: str) -> None:
    for scheme in ("https", "http"):
        try:
            check_callback_url(f"{scheme}://{netloc}/hook")
        except UnsafeCallbackURL:
            pass


@pytest.mark.parametrize(
    "url",
    [
        "https://[64:ff9b::a9fe:a9fe]/", "https://[64:ff9b::7f00:1]/", "https://[64:ff9b::a00:1]/",
        "https://[64:ff9b:1::a9fe:a9fe]/", "https://[::127.0.0.1]/", "https://[::ffff:0:7f00:1]/",
        "https://[::ffff:0:a9fe:a9fe]/", "https://[fec0::1]/", "https://168.63.129.16/",
        "https://[::ffff:168.63.129.16]/", "https://[2001:0:a00:1:8000:63bf:f7f7:f7f7]/",
    ],
)  # fmt: skip
def test_ipv6_spellings_of_internal_ipv4_are_refused(url: str, private_callbacks_off) -> None:
    with pytest.raises(UnsafeCallbackURL, match="is internal"):
        check_callback_url(url)


@pytest.mark.parametrize(
    "url",
    ["https://93.184.215.14/hook", "https://[2606:4700::1111]:8443/hook", "https://[64:ff9b::808:808]/hook"],
)
def test_public_literals_pass_without_resolving(url: str, private_callbacks_off, monkeypatch) -> None:
    from subscriptions import url_safety

    asked: list[str] = []
    monkeypatch.setattr(url_safety.socket, "getaddrinfo", lambda host, *a, **kw: asked.append(host))

    check_callback_url(url)

    assert asked == []


def test_a_name_that_resolves_to_an_internal_address_is_refused(private_callbacks_off) -> None:
    with pytest.raises(UnsafeCallbackURL, match=r"resolves to an internal address \(127\.0\.0\.1\)"):
        check_callback_url("https://mixed.example.com/hook")


def test_a_name_is_resolved_at_every_check_though_its_url_is_read_once(private_callbacks_off, monkeypatch) -> None:
    """The worker checks a subscription's URL before every batch: DNS may have changed since the last one."""
    from subscriptions import url_safety

    url = "https://twice.example.com/hook"
    resolving = url_safety.socket.getaddrinfo  # the suite's resolver, which answers loopback only
    asked: list[str] = []

    def counted(host, *args, **kwargs):
        asked.append(host)
        return resolving(host, *args, **kwargs)

    monkeypatch.setattr(url_safety.socket, "getaddrinfo", counted)
    for _ in range(2):
        with pytest.raises(UnsafeCallbackURL, match="resolves to an internal address"):
            check_callback_url(url)

    assert asked == ["twice.example.com", "twice.example.com"]
    assert parse_callback_url(url) is parse_callback_url(url)  # the reading itself is kept


# --- The API: 400 invalid_callback_url, and nothing stored or changed ------------------------------

REFUSED_BY_THE_API = [
    "https://hooks.example.com:99999/x", "https://93.184.215.14:99999/x", "https://93.184.215.14:0/",
    "https://93.184.215.14:abc/", "https://93.184.215.14:/", "https://[2606:4700::1111]:65536/",
    "https://[64:ff9b::a9fe:a9fe]/", "https://[64:ff9b::7f00:1]/", "https://[64:ff9b::a00:1]/",
    "https://[64:ff9b:1::a9fe:a9fe]/", "https://[::127.0.0.1]/", "https://[::ffff:0:7f00:1]/",
    "https://[::ffff:0:a9fe:a9fe]/", "https://[fec0::1]/", "https://168.63.129.16/",
    "https://2130706433/", "https://0177.0.0.1/", "https://0x7f.1/", "https://127.1/",
    "https://@93.184.215.14/", "https://\u00fc-.example/",
]  # fmt: skip


def assert_refused_callback(response) -> None:
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_callback_url"
    assert error["details"]["callback_url"] == [error["message"]]


@pytest.mark.django_db
@pytest.mark.parametrize("url", REFUSED_BY_THE_API)
def test_creating_with_an_unsafe_callback_url_is_refused(api: APIClient, url: str, private_callbacks_off) -> None:
    response = api.post("/api/v1/subscriptions", {"callback_url": url, "events": ["person.created"]}, format="json")

    assert_refused_callback(response)
    assert Subscription.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("url", REFUSED_BY_THE_API)
def test_patching_in_an_unsafe_callback_url_is_refused(
    api: APIClient, organization, url: str, private_callbacks_off
) -> None:
    subscription = Subscription.objects.create(
        organization=organization, callback_url=PUBLIC_LITERAL_URL, events=["person.created"], secret="s" * 32
    )

    response = api.patch(f"/api/v1/subscriptions/{subscription.pk}", {"callback_url": url}, format="json")

    assert_refused_callback(response)
    subscription.refresh_from_db()
    assert subscription.callback_url == PUBLIC_LITERAL_URL


@pytest.mark.django_db
def test_a_public_literal_callback_is_accepted(api: APIClient, private_callbacks_off) -> None:
    response = api.post(
        "/api/v1/subscriptions", {"callback_url": PUBLIC_LITERAL_URL, "events": ["person.created"]}, format="json"
    )

    assert response.status_code == 201
    assert Subscription.objects.get().callback_url == PUBLIC_LITERAL_URL
