"""chatpy 0.2.2 — a tweepy-style ChatWork client with the widest coverage on PyPI (me,
status, my tasks, contacts, rooms, members, messages, tasks, files).

It is pointed at the server through its own constructor arguments (`host`,
`secure=False`, `api_root="/v2"`; it hard-codes `api.chatwork.com` and `/v1` as
defaults). It sends every parameter in the query string, even for POST and PUT, which
is one of the ChatWork conventions the server must accept. Endpoints chatpy has no
binding for are bound with chatpy's own `bind_api`, the way the library is extended.
"""

import datetime
import time
from urllib.parse import urljoin

import chatpy
import pytest
import requests
from chatpy.binder import bind_api


class API(chatpy.API):
    """chatpy's API plus bindings (made with chatpy's binder) for the endpoints it lacks."""

    get_message = bind_api(
        path="/rooms/{room_id}/messages/{message_id}",
        payload_type="message",
        allowed_param=["room_id", "message_id"],
    )
    update_message = bind_api(
        path="/rooms/{room_id}/messages/{message_id}",
        method="PUT",
        payload_type="json",
        allowed_param=["room_id", "message_id", "body"],
    )
    delete_message = bind_api(
        path="/rooms/{room_id}/messages/{message_id}",
        method="DELETE",
        payload_type="json",
        allowed_param=["room_id", "message_id"],
    )
    read = bind_api(
        path="/rooms/{room_id}/messages/read",
        method="PUT",
        payload_type="json",
        allowed_param=["room_id", "message_id"],
    )
    unread = bind_api(
        path="/rooms/{room_id}/messages/unread",
        method="PUT",
        payload_type="json",
        allowed_param=["room_id", "message_id"],
    )
    task_status = bind_api(
        path="/rooms/{room_id}/tasks/{task_id}/status",
        method="PUT",
        payload_type="json",
        allowed_param=["room_id", "task_id", "body"],
    )
    get_link = bind_api(path="/rooms/{room_id}/link", payload_type="json", allowed_param=["room_id"])
    create_link = bind_api(path="/rooms/{room_id}/link", method="POST", payload_type="json")
    update_link = bind_api(path="/rooms/{room_id}/link", method="PUT", payload_type="json")
    delete_link = bind_api(path="/rooms/{room_id}/link", method="DELETE", payload_type="json")
    join_link = bind_api(path="/links/{code}/join", method="POST", payload_type="json")
    request_contact = bind_api(path="/contacts/requests", method="POST", payload_type="json")
    incoming_requests = bind_api(path="/incoming_requests", payload_type="json")
    approve_request = bind_api(path="/incoming_requests/{request_id}", method="PUT", payload_type="json")
    reject_request = bind_api(path="/incoming_requests/{request_id}", method="DELETE", payload_type="json")
    accept_request = bind_api(
        path="/incoming_requests/{request_id}/accept", method="PUT", payload_type="json"
    )


def api_for(server, account):
    return API(
        auth_handler=chatpy.TokenAuthHandler(account.token),
        host=server.host,
        secure=False,
        api_root="/v2",
    )


def roles(members):
    return {m.account_id: m.role for m in members}


def test_me(server, alice):
    me = api_for(server, alice).me()
    assert isinstance(me, chatpy.models.MyAccount)
    assert (me.account_id, me.name, me.room_id) == (alice.id, "Alice", alice.my_room)
    assert me.organization_name == "Hayabusa"
    assert isinstance(me.organization_id, int)


def test_status_counts_unread_messages_and_mentions(server, alice, bob):
    room = server.room(alice, members=[bob])
    api = api_for(server, bob)
    before = api.status()
    assert (before.unread_num, before.mention_num, before.unread_room_num) == (0, 0, 0)
    api_for(server, alice).post_message(room_id=room, body=f"[To:{bob.id}] Bob, look")
    api_for(server, alice).post_message(room_id=room, body="and this")
    after = api.status()
    assert (after.unread_num, after.mention_num) == (2, 1)
    assert (after.unread_room_num, after.mention_room_num) == (1, 1)
    assert (after.mytask_num, after.mytask_room_num) == (0, 0)


def test_rooms_create_list_get_update_leave_delete(server, alice, bob):
    api = api_for(server, alice)
    name = f"Launch {time.time_ns()}"
    # chatpy's create_room has no payload type: it answers None; the room shows in the list.
    assert (
        api.create_room(
            name=name,
            members_admin_ids=str(alice.id),
            members_member_ids=str(bob.id),
            description="Countdown",
            icon_preset="meeting",
        )
        is None
    )
    assert api.last_response.status_code == 200
    room_id = api.last_response.json()["room_id"]
    listed = [r for r in api.rooms() if r.name == name]
    assert [r.room_id for r in listed] == [room_id]
    room = listed[0]
    assert (room.type, room.role) == ("group", "admin")
    assert isinstance(room.last_update_time, datetime.datetime)  # chatpy parses Unix seconds

    detail = api.get_room(room_id=room_id)
    assert (detail.name, detail.description) == (name, "Countdown")
    assert "meeting" in detail.icon_path

    api.change_room(room_id=room_id, name=name + "!", description="Lift-off")
    assert api.last_response.json() == {"room_id": room_id}
    detail = api.get_room(room_id=room_id)
    assert (detail.name, detail.description) == (name + "!", "Lift-off")
    assert api_for(server, bob).get_room(room_id=room_id).role == "member"

    # Bob leaves; then Alice deletes it for everyone (204 answers).
    bobs = api_for(server, bob)
    bobs.delete_room(room_id=room_id, action_type="leave")
    assert bobs.last_response.status_code == 204
    assert room_id not in [r.room_id for r in bobs.rooms()]
    api.delete_room(room_id=room_id, action_type="delete")
    assert api.last_response.status_code == 204
    with pytest.raises(chatpy.ChatpyError):
        api.get_room(room_id=room_id)
    assert api.last_response.status_code == 404
    assert api.last_response.json()["errors"]


def test_members_get_and_replace(server, alice, bob, carol):
    room = server.room(alice, members=[bob])
    api = api_for(server, alice)
    members = api.get_members(room_id=room)
    assert roles(members) == {alice.id: "admin", bob.id: "member"}
    assert {m.name for m in members} == {"Alice", "Bob"}

    api.change_room_members(
        room_id=room,
        members_admin_ids=str(alice.id),
        members_member_ids=str(carol.id),
        members_readonly_ids=str(bob.id),
    )
    assert api.last_response.json() == {"admin": [alice.id], "member": [carol.id], "readonly": [bob.id]}
    assert roles(api.get_members(room_id=room)) == {
        alice.id: "admin",
        carol.id: "member",
        bob.id: "readonly",
    }
    # A readonly member cannot post: ChatWork's 403 with an errors list.
    with pytest.raises(chatpy.ChatpyError):
        api_for(server, bob).post_message(room_id=room, body="me too")
    assert api_for(server, bob).get_members(room_id=room)  # but still reads


def test_messages_post_list_new_since_last_fetch(server, alice, bob):
    room = server.room(alice, members=[bob])
    api = api_for(server, alice)
    api.post_message(room_id=room, body=f"[To:{bob.id}] Hello Bob")
    message_id = api.last_response.json()["message_id"]
    assert isinstance(message_id, str)

    bobs = api_for(server, bob)
    new = bobs.messages(room_id=room, force=0)
    assert [(m.message_id, m.body) for m in new] == [(message_id, f"[To:{bob.id}] Hello Bob")]
    assert new[0].account["account_id"] == alice.id
    assert new[0].update_time == 0
    assert list(bobs.messages(room_id=room, force=0)) == []  # 204: nothing new
    assert bobs.last_response.status_code == 204

    api.post_message(room_id=room, body="Second")
    assert [m.body for m in bobs.messages(room_id=room)] == ["Second"]
    # force=1: the latest ones whatever was fetched before (and it counts as a fetch).
    latest = bobs.messages(room_id=room, force=1)
    assert [m.body for m in latest] == [f"[To:{bob.id}] Hello Bob", "Second"]
    assert list(bobs.messages(room_id=room)) == []


def test_message_get_update_delete_and_read_unread(server, alice, bob):
    room = server.room(alice, members=[bob])
    api = api_for(server, alice)
    ids = []
    for body in ["one", "two", f"[To:{bob.id}] three"]:
        api.post_message(room_id=room, body=body)
        ids.append(api.last_response.json()["message_id"])

    bobs = api_for(server, bob)
    message = bobs.get_message(room_id=room, message_id=ids[0])
    assert (message.message_id, message.body) == (ids[0], "one")

    assert api.update_message(room_id=room, message_id=ids[0], body="one (edited)") == {"message_id": ids[0]}
    edited = bobs.get_message(room_id=room, message_id=ids[0])
    assert edited.body == "one (edited)" and edited.update_time >= edited.send_time > 0
    with pytest.raises(chatpy.ChatpyError):  # only the author edits
        bobs.update_message(room_id=room, message_id=ids[1], body="mine now")
    assert bobs.last_response.status_code == 403

    assert bobs.read(room_id=room, message_id=ids[1]) == {"unread_num": 1, "mention_num": 1}
    assert bobs.read(room_id=room) == {"unread_num": 0, "mention_num": 0}
    assert bobs.unread(room_id=room, message_id=ids[1]) == {"unread_num": 2, "mention_num": 1}

    assert api.delete_message(room_id=room, message_id=ids[1]) == {"message_id": ids[1]}
    with pytest.raises(chatpy.ChatpyError):
        bobs.get_message(room_id=room, message_id=ids[1])
    assert bobs.last_response.status_code == 404
    assert [m.message_id for m in bobs.messages(room_id=room, force=1)] == [ids[0], ids[2]]


def test_a_non_member_sees_nothing(server, alice, carol):
    room = server.room(alice)
    api = api_for(server, carol)
    for call in (
        lambda: api.get_room(room_id=room),
        lambda: api.get_members(room_id=room),
        lambda: api.messages(room_id=room, force=1),
        lambda: api.post_message(room_id=room, body="hi"),
    ):
        with pytest.raises(chatpy.ChatpyError):
            call()
        assert api.last_response.status_code == 404


def test_an_invalid_token_is_refused_with_chatworks_error(server):
    api = chatpy.API(
        auth_handler=chatpy.TokenAuthHandler("wrong"), host=server.host, secure=False, api_root="/v2"
    )
    with pytest.raises(chatpy.ChatpyError):
        api.me()
    assert api.last_response.status_code == 401
    assert api.last_response.json() == {"errors": ["Invalid API token"]}


def test_tasks_add_list_get_and_complete(server, alice, bob):
    room = server.room(alice, members=[bob])
    api = api_for(server, alice)
    limit = int(time.time()) + 86_400
    created = api.post_tasks(room_id=room, body="Write the report", to_ids=str(bob.id), limit=limit)
    (task_id,) = created.task_ids

    listed = api.room_tasks(room_id=room)
    assert [t.task_id for t in listed] == [task_id]
    task = api.get_task(room_id=room, task_id=task_id)
    assert (task.body, task.status) == ("Write the report", "open")
    assert task.account.account_id == bob.id
    assert task.assigned_by_account.account_id == alice.id
    assert task.limit_time == datetime.datetime.utcfromtimestamp(limit)

    bobs = api_for(server, bob)
    mine = bobs.tasks(status="open")
    assert [(t.task_id, t.room["room_id"]) for t in mine] == [(task_id, room)]
    assert bobs.status().mytask_num == 1
    assert bobs.task_status(room_id=room, task_id=task_id, body="done") == {"task_id": task_id}
    assert list(bobs.tasks(status="open")) == []
    assert [t.task_id for t in bobs.tasks(status="done")] == [task_id]


def test_files_list_and_get_with_a_download_url(server, alice, bob):
    room = server.room(alice, members=[bob])
    uploaded = requests.post(
        f"{server.api}/rooms/{room}/files",
        headers={"X-ChatWorkToken": alice.token},
        files={"file": ("notes.txt", b"file body", "text/plain"), "message": (None, "see notes")},
        timeout=10,
    )
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["file_id"]

    api = api_for(server, bob)
    files = api.files(room_id=room)
    assert [(f.file_id, f.filename, f.filesize) for f in files] == [(file_id, "notes.txt", 9)]
    assert files[0].account.account_id == alice.id
    detail = api.get_file(room_id=room, file_id=file_id, create_download_url=1)
    url = urljoin(server.base, detail.download_url)
    assert requests.get(url, timeout=10).content == b"file body"


def test_contacts_requests_approve_reject(server, alice, bob, carol):
    alices, bobs = api_for(server, alice), api_for(server, bob)
    alices.request_contact(account_id=bob.id, message="Hi Bob")
    (incoming,) = bobs.incoming_requests()
    assert (incoming["account_id"], incoming["message"], incoming["name"]) == (alice.id, "Hi Bob", "Alice")
    contact = bobs.approve_request(request_id=incoming["request_id"])
    assert contact["account_id"] == alice.id
    assert [c.account_id for c in bobs.contacts()] == [alice.id]
    (bob_as_contact,) = alices.contacts()
    assert (bob_as_contact.account_id, bob_as_contact.room_id) == (bob.id, contact["room_id"])

    api_for(server, carol).request_contact(account_id=bob.id)
    (from_carol,) = bobs.incoming_requests()
    bobs.reject_request(request_id=from_carol["request_id"])
    assert bobs.last_response.status_code == 204
    assert not bobs.incoming_requests()  # [] or a 204 (which chatpy turns into {})
    assert [c.account_id for c in bobs.contacts()] == [alice.id]


def test_incoming_requests_accept_form_of_the_chatwork_mcp_server(server, alice, bob):
    api_for(server, alice).request_contact(account_id=bob.id, message="via MCP")
    bobs = api_for(server, bob)
    (incoming,) = bobs.incoming_requests()
    assert bobs.accept_request(request_id=incoming["request_id"])["account_id"] == alice.id
    assert [c.account_id for c in bobs.contacts()] == [alice.id]


def test_invitation_link_create_get_update_join_delete(server, alice, carol):
    room = server.room(alice)
    api = api_for(server, alice)
    code = f"team-{time.time_ns()}"
    link = api.create_link(room_id=room, code=code, need_acceptance=0, description="Join us")
    assert link["public"] is True and code in link["url"]
    assert (link["need_acceptance"], link["description"]) == (False, "Join us")
    assert api.get_link(room_id=room) == link
    changed = api.update_link(room_id=room, need_acceptance=1, description="Ask first")
    assert (changed["need_acceptance"], changed["description"]) == (True, "Ask first")
    api.update_link(room_id=room, need_acceptance=0)

    carols = api_for(server, carol)
    carols.join_link(code=code)
    assert room in [r.room_id for r in carols.rooms()]
    assert api.delete_link(room_id=room) == {"public": False}
