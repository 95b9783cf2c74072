"""The suite cannot reach the network: only loopback (the fake, PostgreSQL) is allowed."""

import socket

import pytest
from pytest_socket import SocketConnectBlockedError

pytestmark = pytest.mark.e2e


@pytest.mark.filterwarnings("ignore:A test tried to use socket.socket.connect")
def test_connecting_to_a_non_loopback_address_is_refused() -> None:
    # 10.255.255.1 is unroutable: without the guard this would hang until the timeout.
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("10.255.255.1", 9), timeout=1)


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=1):
            pass
