"""chatworkpy 0.0.7 — `Rooms` (messages with mentions resolved through rooms and
members, tasks) and `Contacts`. It keeps the API root in an instance attribute
`base_url`, hard-coded to `https://api.chatwork.com/v2`; it is overridden after
construction.
"""

import datetime

from chatworkpy.chatwork.contacts import Contacts
from chatworkpy.chatwork.rooms import Rooms


def rooms_for(server, account, room_id):
    rooms = Rooms(account.token, room_id)
    rooms.base_url = server.api
    return rooms


def test_send_message_resolving_names_through_rooms_and_members(server, alice, bob):
    room = server.room(alice, members=[bob], name="chatworkpy")
    rooms = rooms_for(server, alice, room)
    # GET /rooms, then GET /rooms/{id}/members for each room, to find Bob's name.
    accounts = rooms._make_accounts_dict([bob.id])
    assert accounts == [{"account_id": bob.id, "name": "Bob"}]
    answer = rooms.send_message("Ship it", accounts)
    assert isinstance(answer["message_id"], str)
    (message,) = server.messages(bob, room)
    assert message["body"].startswith(f"[To:{bob.id}] Bob さん")
    assert message["body"].endswith("Ship it")


def test_rooms_list_through_exec_request(server, alice, bob):
    room = server.room(alice, members=[bob], name="listed")
    listed = rooms_for(server, bob, room)._get_rooms()
    assert {r["room_id"]: r["type"] for r in listed} == {bob.my_room: "my", room: "group"}


def test_send_task_with_a_limit(server, alice, bob):
    room = server.room(alice, members=[bob])
    limit = datetime.datetime(2030, 1, 2, 3, 4, 5)
    answer = rooms_for(server, alice, room).send_task("Renew the domain", [bob.id], limit=limit)
    (task_id,) = answer["task_ids"]
    task = server.call(bob.token, "GET", f"/rooms/{room}/tasks/{task_id}").json()
    assert (task["body"], task["limit_time"]) == ("Renew the domain", 1893553445)


def test_contacts(server, alice, bob):
    server.call(alice.token, "POST", "/contacts/requests", data={"account_id": bob.id})
    (incoming,) = server.call(bob.token, "GET", "/incoming_requests").json()
    server.call(bob.token, "PUT", f"/incoming_requests/{incoming['request_id']}")
    contacts = Contacts(alice.token, [str(bob.id)])
    contacts.base_url = server.api
    response = contacts._get_contact_name()
    assert response.status_code == 200, response.text
    assert [c["account_id"] for c in response.json()] == [bob.id]
