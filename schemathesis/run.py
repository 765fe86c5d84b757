"""Runs Schemathesis against a real Hayabusa binary: starts it on a free port with a
temporary data directory (rate limits off), creates fixtures so that path parameters
name things that exist (a room with a message, a task, a file and an invitation link,
a pending join request, a contact request, a room to delete), writes a Schemathesis
configuration that pins those ids and the administrator's token, and runs a bounded
`st run` against `GET /v2/openapi.json`. Extra arguments go to `st run`.

Called by `scripts/schemathesis`, which makes the virtualenv and builds the binary.
"""

import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

import requests

HERE = pathlib.Path(__file__).resolve().parent

#: The checks every response must pass.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
]


#: Ids just past the limits of the integer types a store might use.
HOSTILE_IDS = [2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64]

#: The parameters that take an account id (or a list of them) besides path ones.
HOSTILE_ID_PARAMETERS = [
    "query.account_id",
    "query.assigned_by_account_id",
    "body.account_id",
    "body.members_admin_ids",
    "body.members_member_ids",
    "body.members_readonly_ids",
    "body.to_ids",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, data_dir):
    """Starts the server; returns the process and its base URL."""
    for _attempt in range(5):
        host = f"127.0.0.1:{free_port()}"
        log = open(data_dir / "server.log", "ab")
        process = subprocess.Popen(
            [binary, "serve", "--data-dir", str(data_dir), "--listen", host, "--no-rate-limits"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"http://{host}/healthz", timeout=1).ok:
                    return process, f"http://{host}"
            except requests.ConnectionError:
                time.sleep(0.05)
        process.kill()
        process.wait()
    sys.exit(f"the server did not start; see {data_dir / 'server.log'}")


class Api:
    """A small client for setting up fixtures."""

    def __init__(self, base, token):
        self.base = base
        self.token = token

    def call(self, method, path, expect=200, **kwargs):
        response = requests.request(
            method,
            f"{self.base}/v2{path}",
            headers={"X-ChatWorkToken": self.token},
            timeout=10,
            **kwargs,
        )
        if response.status_code != expect:
            sys.exit(f"fixture {method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None


def fixtures(base, admin_token):
    """Creates what the path parameters point at; returns their ids by name."""
    admin = Api(base, admin_token)
    me = admin.call("GET", "/me")

    def account(name):
        created = admin.call("POST", "/accounts", data={"name": name})
        return created["account_id"], Api(base, created["token"])

    bob_id, bob = account("Bob")
    carol_id, carol = account("Carol")
    room = admin.call(
        "POST",
        "/rooms",
        data={"name": "Fuzz", "members_admin_ids": me["account_id"], "members_member_ids": bob_id},
    )["room_id"]
    doomed = admin.call(
        "POST", "/rooms", data={"name": "To delete", "members_admin_ids": me["account_id"]}
    )["room_id"]
    message = admin.call("POST", f"/rooms/{room}/messages", data={"body": "hello [To:%d]" % bob_id})
    task = admin.call(
        "POST", f"/rooms/{room}/tasks", data={"body": "do it", "to_ids": me["account_id"]}
    )["task_ids"][0]
    upload = admin.call(
        "POST", f"/rooms/{room}/files", files={"file": ("a.txt", b"hello"), "message": (None, "a file")}
    )
    admin.call("POST", f"/rooms/{room}/link", data={"code": "fuzz-room", "need_acceptance": 1})
    carol.call("POST", "/links/fuzz-room/join", expect=202)
    request = bob.call("POST", "/contacts/requests", data={"account_id": me["account_id"]})
    # `POST /me/token` rotates the caller's token: it runs as an account of its own, or
    # it would lock the administrator's token out of the rest of the run.
    _, rotator = account("Rotator")
    return {
        "rotator_token": rotator.token,
        "room_id": room,
        "doomed_room_id": doomed,
        "message_id": message["message_id"],
        "task_id": task,
        "file_id": upload["file_id"],
        "code": "fuzz-room",
        "account_id": carol_id,
        "request_id": request["request_id"],
    }


def config(ids, admin_token):
    """The Schemathesis configuration (TOML) for these fixtures."""
    lines = [
        f'headers = {{ "X-ChatWorkToken" = "{admin_token}" }}',
        "",
        # In the file rather than on the command line, where they would override the
        # per-operation exclusions.
        "[checks]",
        "enabled = false",
        *(f"{check}.enabled = true" for check in CHECKS),
        "",
        "[parameters]",
    ]
    for name in ["room_id", "message_id", "task_id", "file_id", "code", "account_id", "request_id"]:
        lines.append(f'"path.{name}" = {ids[name]!r}'.replace("'", '"'))
    # Ids around the integer limits (2^53, 2^63, 2^64), now and then, where any
    # account id may be given: the generated values are mostly small.
    for key in HOSTILE_ID_PARAMETERS:
        lines.append(f'"{key}" = {{ dictionary = "hostile-ids", probability = 0.2 }}')
    lines += [
        "",
        "[dictionaries.hostile-ids]",
        "values = [" + ", ".join(f'"{v}"' for v in HOSTILE_IDS) + "]",
    ]
    lines += [
        "",
        "# Deleting the fixture room would leave the other operations only 404s.",
        "[[operations]]",
        'include-path = "/v2/rooms/{room_id}"',
        'include-method = "DELETE"',
        f'parameters = {{ "path.room_id" = {ids["doomed_room_id"]} }}',
        "",
        "# Rotating a token refuses the old one: not the administrator's.",
        "[[operations]]",
        'include-path = "/v2/me/token"',
        f'headers = {{ "X-ChatWorkToken" = "{ids["rotator_token"]}" }}',
        "",
        "# A long-poll waits up to `timeout` seconds when nothing is new: keep it short.",
        "[[operations]]",
        'include-path = "/v2/sync"',
        f'parameters = {{ "query.timeout" = 0 }}',
    ]
    exclusions = (HERE / "exclusions.toml").read_text()
    return "\n".join(lines) + "\n\n" + exclusions


def main():
    binary = os.environ.get("HAYABUSA_BIN")
    if not binary or not os.path.exists(binary):
        sys.exit("HAYABUSA_BIN must name the built hayabusa binary (use scripts/schemathesis)")
    st = pathlib.Path(sys.executable).parent / "st"
    with tempfile.TemporaryDirectory(prefix="hayabusa-schemathesis-") as tmp:
        tmp = pathlib.Path(tmp)
        data_dir = tmp / "data"
        data_dir.mkdir()
        process, base = start(binary, data_dir)
        try:
            admin_token = (data_dir / "admin.token").read_text().strip()
            ids = fixtures(base, admin_token)
            config_file = tmp / "schemathesis.toml"
            config_file.write_text(config(ids, admin_token))
            command = [
                str(st),
                "--no-color",
                "--config-file",
                str(config_file),
                "run",
                f"{base}/v2/openapi.json",
                "--url",
                base,
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "20"),
                "--workers",
                "2",
                "--request-timeout",
                "10",
                "--seed",
                os.environ.get("SCHEMATHESIS_SEED", "1"),
                *sys.argv[1:],
            ]
            code = subprocess.call(command, cwd=tmp)
        finally:
            process.terminate()
            process.wait(timeout=10)
        log = (data_dir / "server.log").read_text(errors="replace")
        if "panicked" in log:
            print(log, file=sys.stderr)
            print("the server panicked", file=sys.stderr)
            code = code or 1
    sys.exit(code)


if __name__ == "__main__":
    main()
