"""chatpywork 1.3.0 — a `Room` that sends messages, tasks and files. Its module-level
`BASE_URL` is hard-coded to `https://api.chatwork.com/v2`; it is patched per test. It
uploads files as multipart with a `message` part that carries a filename (requests
names it after the field), which the server must read as text.
"""

import chatpywork.room
import pytest
from chatpywork import Room


@pytest.fixture(autouse=True)
def point_at_server(server, monkeypatch):
    monkeypatch.setattr(chatpywork.room, "BASE_URL", server.api)


def test_send_message_with_mentions(server, alice, bob):
    room = server.room(alice, members=[bob])
    response = Room(str(room), alice.token).send_message("Stand-up in 5", to={str(bob.id): "Bob"})
    assert response.status_code == 200, response.text
    message_id = response.json()["message_id"]
    assert response.headers["x-ratelimit-limit"]  # answers to token requests carry them

    (message,) = server.messages(bob, room)
    assert (message["message_id"], message["body"]) == (message_id, f"[To:{bob.id}] Bobさん\nStand-up in 5")
    status = server.call(bob.token, "GET", "/my/status").json()
    assert (status["unread_num"], status["mention_num"]) == (1, 1)


def test_send_message_to_all(server, alice, bob):
    room = server.room(alice, members=[bob])
    response = Room(str(room), alice.token).send_message("Lunch?", toall=True)
    assert response.status_code == 200, response.text
    assert [m["body"] for m in server.messages(bob, room)] == ["[toall]\nLunch?"]


def test_a_readonly_member_is_refused(server, alice, bob):
    room = server.room(alice, readonly=[bob])
    response = Room(str(room), bob.token).send_message("Can I?")
    assert response.status_code == 403
    assert response.json()["errors"]


def test_send_task(server, alice, bob):
    room = server.room(alice, members=[bob])
    response = Room(str(room), alice.token).send_task("Review the draft", [str(bob.id)])
    assert response.status_code == 200, response.text
    (task_id,) = response.json()["task_ids"]
    task = server.call(bob.token, "GET", f"/rooms/{room}/tasks/{task_id}").json()
    assert (task["body"], task["account"]["account_id"], task["status"]) == ("Review the draft", bob.id, "open")


def test_send_data_uploads_a_file_with_a_message(server, alice, bob):
    room = server.room(alice, members=[bob])
    response = Room(str(room), alice.token).send_data(b"a,b\n1,2\n", "table.csv", "text/csv", message="the table")
    assert response.status_code == 200, response.text
    file_id = response.json()["file_id"]
    (listed,) = server.call(bob.token, "GET", f"/rooms/{room}/files").json()
    assert (listed["file_id"], listed["filename"], listed["filesize"]) == (file_id, "table.csv", 8)
    assert "the table" in [m["body"] for m in server.messages(bob, room)][-1]


def test_send_csv(server, alice):
    room = server.room(alice)
    response = Room(str(room), alice.token).send_csv([["a", "b"], [1, 2]], "rows.csv")
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["file_id"], int)
