"""Fixtures: one real Hayabusa server (the binary in $HAYABUSA_BIN) per test session,
with fresh accounts created through the admin token for every test.

The libraries under test do the calls a test is about; the harness itself uses
`requests` only to set things up (accounts, rooms) and to check results independently.

Hayabusa guarantees read-your-writes per account; what one account wrote becomes
visible to the others once the projector has applied it (milliseconds later). These
tests switch accounts at every step, so before each request to the API the harness
waits until the projector has reached the log head (`GET /healthz`); the request itself
is sent unchanged.
"""

import dataclasses
import os
import socket
import subprocess
import time

import pytest
import requests

#: Requests per token per window the server is started with (generous, so that the
#: many accounts the admin token creates stay under it; the room posting limit keeps
#: ChatWork's 10 per 10 s).
TOKEN_LIMIT = 10_000

#: Mark for calls to endpoints that are not built yet: strict, so that a test turns
#: into a failure the moment its endpoint lands — then remove the mark.
not_built = pytest.mark.xfail(strict=True, reason="endpoint not built yet")


@dataclasses.dataclass
class Account:
    """An account of the server and its API token."""

    id: int
    name: str
    token: str
    my_room: int


class Server:
    """A running Hayabusa binary."""

    def __init__(self, host, admin_token):
        self.host = host  # "127.0.0.1:PORT"
        self.base = f"http://{host}"
        self.api = f"{self.base}/v2"
        self.admin_token = admin_token

    def call(self, token, method, path, **kwargs):
        """A plain request to the API (for setting up and checking, not under test)."""
        return requests.request(
            method,
            f"{self.api}{path}",
            headers={"X-ChatWorkToken": token},
            timeout=10,
            **kwargs,
        )

    def account(self, name):
        """Creates an account with the admin token."""
        response = self.call(self.admin_token, "POST", "/accounts", data={"name": name})
        assert response.status_code == 200, response.text
        body = response.json()
        return Account(body["account_id"], name, body["token"], body["room_id"])

    def room(self, admin, members=(), readonly=(), name="Room"):
        """A group room with `admin` as its admin; returns its id."""
        ids = lambda accounts: ",".join(str(a.id) for a in accounts)  # noqa: E731
        response = self.call(
            admin.token,
            "POST",
            "/rooms",
            data={
                "name": name,
                "members_admin_ids": str(admin.id),
                "members_member_ids": ids(members),
                "members_readonly_ids": ids(readonly),
            },
        )
        assert response.status_code == 200, response.text
        return response.json()["room_id"]

    def messages(self, account, room_id):
        """The latest messages of a room as `account` sees them."""
        response = self.call(account.token, "GET", f"/rooms/{room_id}/messages", params={"force": 1})
        assert response.status_code in (200, 204), response.text
        return response.json() if response.status_code == 200 else []


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    binary = os.environ.get("HAYABUSA_BIN")
    if not binary or not os.path.exists(binary):
        pytest.exit("HAYABUSA_BIN must name the built hayabusa binary (use clients/run)", 2)
    for _attempt in range(5):
        data_dir = tmp_path_factory.mktemp("data")
        log = open(data_dir / "server.log", "wb")
        host = f"127.0.0.1:{_free_port()}"
        process = subprocess.Popen(
            [
                binary,
                "serve",
                "--data-dir",
                str(data_dir),
                "--listen",
                host,
                "--rate-limit-requests",
                str(TOKEN_LIMIT),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        healthy = False
        deadline = time.monotonic() + 20
        while not healthy and time.monotonic() < deadline and process.poll() is None:
            try:
                healthy = requests.get(f"http://{host}/healthz", timeout=1).ok
            except requests.ConnectionError:
                time.sleep(0.05)
        if healthy:
            token = (data_dir / "admin.token").read_text().strip()
            yield Server(host, token)
            process.terminate()
            process.wait(timeout=10)
            return
        # The port was taken in the meantime (or the start hung): try another.
        process.kill()
        process.wait()
    pytest.exit(f"the server did not start; see {data_dir / 'server.log'}", 2)


def _settle(base):
    """Waits until the read models have caught up with the event log."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        health = requests.get(f"{base}/healthz", timeout=5).json()
        if health["projected"] >= health["log_head"]:
            return
        time.sleep(0.002)
    raise AssertionError(f"the projector did not catch up: {health}")


@pytest.fixture(scope="session", autouse=True)
def settle_before_each_request(server):
    """Makes every account see every earlier write (see the module documentation)."""
    send = requests.Session.send

    def settled_send(session, request, **kwargs):
        if request.url.startswith(server.base) and not request.url.endswith("/healthz"):
            _settle(server.base)
        return send(session, request, **kwargs)

    requests.Session.send = settled_send
    yield
    requests.Session.send = send


@pytest.fixture
def alice(server):
    return server.account("Alice")


@pytest.fixture
def bob(server):
    return server.account("Bob")


@pytest.fixture
def carol(server):
    return server.account("Carol")
