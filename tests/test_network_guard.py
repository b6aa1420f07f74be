"""The suite itself must fail any test that opens a network connection."""

import socket

import pytest

from rewardkit.testing import NetworkAccessError


def test_connect_is_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(NetworkAccessError):
        sock.connect(("127.0.0.1", 9))


def test_create_connection_is_refused():
    with pytest.raises(NetworkAccessError):
        socket.create_connection(("huggingface.co", 443), timeout=1)


def test_unix_sockets_still_work():
    # DataLoader workers and multiprocessing rely on local sockets.
    left, right = socket.socketpair()
    left.sendall(b"ok")
    assert right.recv(2) == b"ok"
    left.close()
    right.close()
