"""cwthon 0.1.3.2 — sends messages to rooms and reports ChatWork's rate-limit headers
(`X-RateLimit-Limit`, `-Remaining`, `-Reset`) on its answer objects. It reads its token
from `$CW_TOKEN` and its API root from the module global `cwthon._base.baseUrl`
(hard-coded to `https://api.chatwork.com/v2/`), and on import of `cwthon.chatwork` it
loads `GET /contacts` and `GET /rooms` into caches.
"""

import datetime
import importlib
import sys

import pytest
from conftest import TOKEN_LIMIT


@pytest.fixture
def cwthon_for(server, monkeypatch):
    """Imports cwthon afresh for `account`, pointed at the server."""

    def load(account, stub_contacts=False):
        for name in ["cwthon.chatwork", "cwthon._base", "cwthon.chatwork_prop", "cwthon._util"]:
            sys.modules.pop(name, None)
        monkeypatch.setenv("CW_TOKEN", account.token)
        base = importlib.import_module("cwthon._base")
        monkeypatch.setattr(base, "baseUrl", f"{server.api}/")
        if stub_contacts:
            # GET /contacts is not built yet; only the import-time cache needs it.
            monkeypatch.setattr(base, "updateContactDictCache", lambda: {})
        return importlib.import_module("cwthon.chatwork")

    yield load
    for name in ["cwthon.chatwork", "cwthon._base"]:
        sys.modules.pop(name, None)


def test_send_to_a_room_and_read_the_rate_limit_headers(server, alice, bob, cwthon_for):
    room = server.room(alice, members=[bob], name="cwthon")
    cwthon = cwthon_for(alice, stub_contacts=True)
    assert cwthon.getRoomInfo(room)["name"] == "cwthon"  # from GET /rooms

    answer = cwthon.cwReq().sendMsgToRoom(room, "sent by cwthon")
    assert not answer.isErr, answer.res.text
    assert answer.res.json()["message_id"]
    assert int(answer.limit) == TOKEN_LIMIT
    assert 0 <= int(answer.remaining) < TOKEN_LIMIT
    in_five_minutes = datetime.datetime.now() + datetime.timedelta(minutes=5)
    assert datetime.datetime.now() < answer.reset <= in_five_minutes + datetime.timedelta(seconds=2)
    assert [m["body"] for m in server.messages(bob, room)] == ["sent by cwthon"]


def test_an_unknown_room_is_an_error_not_a_crash(server, alice, cwthon_for):
    cwthon = cwthon_for(alice, stub_contacts=True)
    assert cwthon.getRoomInfo(987654321) is None


def test_import_loads_contacts(server, alice, bob, cwthon_for):
    server.call(alice.token, "POST", "/contacts/requests", data={"account_id": bob.id})
    (incoming,) = server.call(bob.token, "GET", "/incoming_requests").json()
    server.call(bob.token, "PUT", f"/incoming_requests/{incoming['request_id']}")
    cwthon = cwthon_for(alice)
    assert cwthon.getContactInfo(bob.id)["name"] == "Bob"
    answer = cwthon.cwReq().sendMsgToAccount(bob.id, "direct, via the contact's room")
    assert not answer.isErr, answer.res.text
