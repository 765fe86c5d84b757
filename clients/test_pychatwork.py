"""pychatwork 1.0.5 — posts and reads messages. Its `BASE_URL` class attribute is
hard-coded to `https://api.chatwork.com/v2/`; it is overridden on the instance. It sends
the `body` of a POST in the query string with an empty body, a ChatWork convention the
server must accept.
"""

import pytest
from pychatwork import ChatworkClient


def client_for(server, account):
    client = ChatworkClient(account.token)
    client.BASE_URL = f"{server.api}/"
    return client


def test_post_and_get_messages(server, alice, bob):
    room = server.room(alice, members=[bob])
    answer = client_for(server, alice).post_messages("Hello from pychatwork", room)
    assert isinstance(answer["message_id"], str)

    bobs = client_for(server, bob)
    latest = bobs.get_messages(room, force=True)
    assert [(m["message_id"], m["body"]) for m in latest] == [(answer["message_id"], "Hello from pychatwork")]
    assert latest[0]["account"]["account_id"] == alice.id
    # force=0: new since Bob's previous fetch; pychatwork turns the 204 into [].
    assert bobs.get_messages(room) == []
    client_for(server, alice).post_messages("And again", room)
    assert [m["body"] for m in bobs.get_messages(room)] == ["And again"]
    assert [m["body"] for m in server.messages(bob, room)] == ["Hello from pychatwork", "And again"]


def test_errors_surface_as_chatwork_errors(server, alice, carol):
    room = server.room(alice)
    with pytest.raises(Exception) as refused:
        client_for(server, carol).post_messages("not a member", room)
    assert refused.value.args[0] == ["room not found"]
    with pytest.raises(Exception) as empty:
        client_for(server, alice).post_messages("", room)
    assert empty.value.args[0] and all(isinstance(e, str) for e in empty.value.args[0])
