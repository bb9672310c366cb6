"""Network failures in a few words, from real sockets on loopback."""

from __future__ import annotations

import socket

import pytest
import requests

from monagent.notify.neterror import describe_network_error


def failure(url: str, timeout: float) -> requests.RequestException:
    with requests.Session() as session:
        with pytest.raises(requests.RequestException) as info:
            session.post(url, data=b"{}", timeout=timeout)
    return info.value


def test_a_closed_port_is_connection_refused_with_host_and_port_only():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exc = failure(f"http://127.0.0.1:{port}/robot/send?access_token=s3cr3t", 5)
    assert describe_network_error(exc, 5) == (
        f"connection refused by 127.0.0.1:{port} (nothing listens there, or a proxy is needed)"
    )


def test_a_server_that_accepts_and_never_answers_is_a_read_timeout():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        exc = failure(f"http://127.0.0.1:{port}/hook?key=s3cr3t", 0.2)
    assert describe_network_error(exc, 0.2) == f"connected to 127.0.0.1:{port} but got no answer within 0.2s"


def test_tls_spoken_to_a_plain_http_port_is_a_tls_error():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def reply_plain_text() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        import threading

        thread = threading.Thread(target=reply_plain_text)
        thread.start()
        exc = failure(f"https://127.0.0.1:{port}/hook", 5)
        thread.join()
    said = describe_network_error(exc, 5)
    assert said is not None and said.startswith(f"TLS error with 127.0.0.1:{port}: ")


def test_an_unknown_failure_is_left_to_the_caller():
    assert describe_network_error(requests.RequestException("odd"), 5) is None
