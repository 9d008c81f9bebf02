"""HTTP functions served by the local host: routes, methods, keys, request and response."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from mdsync.devhost import DevHost
from tests.devhost.conftest import FUNCTION_KEY, HOST_KEY, MASTER_KEY, OTHER_FUNCTION_KEY, HostFactory


def test_route_parameters_query_body_and_response_reach_both_sides(
    served: DevHost, http: requests.Session
) -> None:
    response = http.post(
        f"{served.url}/api/items/42/widget?code={FUNCTION_KEY}&tag=a&tag=b",
        data=b'{"x": 1}',
        headers={"x-trace": "t-1"},
    )
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-echo"] == "1"
    echo = response.json()
    assert echo["method"] == "POST"
    assert echo["route"] == {"id": "42", "name": "widget"}
    # Azure keeps the key in the query parameters the function sees.
    assert echo["params"] == {"code": FUNCTION_KEY, "tag": "a,b"}
    assert echo["body"] == '{"x": 1}'
    assert echo["trace"] == "t-1"
    assert echo["url"].startswith(f"{served.url}/api/items/42/widget?")


def test_optional_route_parameter_may_be_absent(served: DevHost, http: requests.Session) -> None:
    response = http.get(f"{served.url}/api/items/7", headers={"x-functions-key": FUNCTION_KEY})
    assert response.status_code == 201
    assert response.json()["route"] == {"id": "7"}


@pytest.mark.parametrize(
    "path", ["/api/items/abc", "/api/items", "/api/nothing", "/items/1", "/api/items/1/a/b"]
)
def test_unmatched_paths_are_404(served: DevHost, http: requests.Session, path: str) -> None:
    assert http.get(f"{served.url}{path}", headers={"x-functions-key": FUNCTION_KEY}).status_code == 404


def test_wrong_method_is_405_with_allow(served: DevHost, http: requests.Session) -> None:
    response = http.delete(f"{served.url}/api/items/1", headers={"x-functions-key": FUNCTION_KEY})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert http.post(f"{served.url}/api/ping").status_code == 405


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, "", 401),
        ({"x-functions-key": "wrong"}, "", 401),
        ({}, "?code=wrong", 401),
        ({"x-functions-key": OTHER_FUNCTION_KEY}, "", 401),  # another function's key
        ({"x-functions-key": FUNCTION_KEY}, "", 201),
        ({}, f"?code={FUNCTION_KEY}", 201),
        ({"x-functions-key": HOST_KEY}, "", 201),
        ({}, f"?code={HOST_KEY}", 201),
        ({"x-functions-key": MASTER_KEY}, "", 201),
        # The header is the key that counts when both are sent.
        ({"x-functions-key": "wrong"}, f"?code={FUNCTION_KEY}", 401),
    ],
)
def test_function_level_keys(
    served: DevHost, http: requests.Session, headers: dict[str, str], query: str, status: int
) -> None:
    assert http.get(f"{served.url}/api/items/1{query}", headers=headers).status_code == status


@pytest.mark.parametrize(
    ("key", "status"),
    [(None, 401), (OTHER_FUNCTION_KEY, 401), (HOST_KEY, 401), (MASTER_KEY, 204)],
)
def test_admin_level_needs_the_master_key(
    served: DevHost, http: requests.Session, key: str | None, status: int
) -> None:
    headers = {"x-functions-key": key} if key else {}
    assert http.post(f"{served.url}/api/ops/reset", headers=headers).status_code == status


def test_anonymous_needs_no_key_and_str_return_is_text(served: DevHost, http: requests.Session) -> None:
    response = http.get(f"{served.url}/api/ping")
    assert response.status_code == 200
    assert response.text == "pong"
    assert response.headers["content-type"].startswith("text/plain")


def test_route_literals_are_case_insensitive(served: DevHost, http: requests.Session) -> None:
    assert http.get(f"{served.url}/API/Ping").status_code == 200


def test_async_function_is_awaited(served: DevHost, http: requests.Session) -> None:
    assert http.get(f"{served.url}/api/async").text == "awaited"


def test_a_raising_function_gives_a_bare_500(served: DevHost, http: requests.Session) -> None:
    response = http.get(f"{served.url}/api/boom")
    assert response.status_code == 500
    assert "secret" not in response.text


def test_requests_are_served_concurrently(served: DevHost, http: requests.Session) -> None:
    results: list[int] = []

    def call() -> None:
        with requests.Session() as session:
            session.trust_env = False
            results.append(session.get(f"{served.url}/api/pair", timeout=30).status_code)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Sequential execution would break the sample's two-party barrier (500).
    assert results == [200, 200]


def test_host_status_needs_the_master_key(served: DevHost, http: requests.Session) -> None:
    assert http.get(f"{served.url}/admin/host/status").status_code == 401
    assert (
        http.get(f"{served.url}/admin/host/status", headers={"x-functions-key": HOST_KEY}).status_code == 401
    )
    response = http.get(f"{served.url}/admin/host/status", headers={"x-functions-key": MASTER_KEY})
    assert response.json()["state"] == "Running"


# --- the request body limit ----------------------------------------------------------------------

LIMIT = 256 * 1024


def _chunked_post(url: str, path: str, total: int, chunk: int = 64 * 1024) -> bytes:
    """POST ``total`` bytes with ``Transfer-Encoding: chunked`` (no Content-Length) over a raw
    socket; sending stops when the server closes; returns what the server answered."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nx-functions-key: {FUNCTION_KEY}\r\n"
            "Transfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        sock.sendall(head.encode())
        sent = 0
        try:
            while sent < total:
                sock.sendall(f"{chunk:x}\r\n".encode() + b"x" * chunk + b"\r\n")
                sent += chunk
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the body ended
        answer = b""
        try:
            while not answer.endswith(b"\r\n\r\n") and b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    return answer


def test_a_chunked_body_over_the_limit_is_refused_before_it_is_read_whole(make_host: HostFactory) -> None:
    """Issue 12, fault 7: a chunked body had no limit at all (a 220 MB body grew the host by 440 MB)."""
    host = make_host(max_body_bytes=LIMIT).start()
    answer = _chunked_post(host.url, "/api/items/1", total=16 * LIMIT)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_chunked_body_within_the_limit_reaches_the_function(make_host: HostFactory) -> None:
    host = make_host(max_body_bytes=LIMIT).start()
    answer = _chunked_post(host.url, "/api/items/1", total=LIMIT // 2)
    assert answer.startswith(b"HTTP/1.1 201"), answer[:200]


def test_a_declared_length_over_the_limit_is_refused_at_once(
    make_host: HostFactory, http: requests.Session
) -> None:
    host = make_host(max_body_bytes=LIMIT).start()
    response = http.post(
        f"{host.url}/api/items/1", data=b"x" * (LIMIT + 1), headers={"x-functions-key": FUNCTION_KEY}
    )
    assert response.status_code == 413
