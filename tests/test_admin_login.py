"""Admin logins are throttled against password guessing (django-axes)."""

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from pytest_django.fixtures import Settings

from whisper_project.client_ip import client_ip

LOGIN = "/admin/login/?next=/admin/"
GUESSER = "203.0.113.7"
COLLEAGUE = "198.51.100.20"


@pytest.fixture
def supervisors(db: None) -> list[User]:
    return [
        User.objects.create_user("maria", password="the-right-password", is_staff=True),
        User.objects.create_user("tom", password="toms-own-password", is_staff=True),
    ]


def log_in(client: Client, username: str, password: str, ip: str) -> int:
    response = client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)
    return response.status_code


def test_five_wrong_passwords_lock_that_user_from_that_address(supervisors: list[User]) -> None:
    client = Client()
    # A wrong password re-shows the form; the fifth locks the pair out.
    assert [log_in(client, "maria", f"guess-{n}", GUESSER) for n in range(4)] == [200] * 4
    assert log_in(client, "maria", "guess-4", GUESSER) == 429

    response = client.post(LOGIN, {"username": "maria", "password": "the-right-password"}, REMOTE_ADDR=GUESSER)
    assert response.status_code == 429
    assert "Account locked: too many login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session

    # Another supervisor from another address, and even maria from her own desk, log in.
    assert log_in(Client(), "tom", "toms-own-password", COLLEAGUE) == 302
    assert log_in(Client(), "maria", "the-right-password", COLLEAGUE) == 302


def test_a_successful_login_clears_earlier_mistakes(supervisors: list[User]) -> None:
    client = Client()
    for n in range(4):
        log_in(client, "maria", f"guess-{n}", GUESSER)
    assert log_in(client, "maria", "the-right-password", GUESSER) == 302
    client.logout()
    assert [log_in(Client(), "maria", f"again-{n}", GUESSER) for n in range(4)] == [200] * 4


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.7", "10.0.0.2"),  # no proxy trusted: the header is anyone's to send
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "1.2.3.4, 203.0.113.7", "203.0.113.7"),  # the client's own claim is ignored
        (2, "1.2.3.4, 203.0.113.7, 10.0.0.9", "203.0.113.7"),
        (2, "203.0.113.7", "10.0.0.2"),  # fewer hops than proxies: not through ours
        (1, "not-an-address", "10.0.0.2"),
        (1, "", "10.0.0.2"),
    ],
)
def test_the_client_address_is_read_from_x_forwarded_for_only_behind_trusted_proxies(
    settings: Settings, proxies: int, forwarded: str, expected: str
) -> None:
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/admin/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected
