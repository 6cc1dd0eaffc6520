"""siaga's HTTP API from the end-to-end scripts (sip-tests/e2e-acd.sh): one JSON request,
and a login that exits the script with a message when it fails. Standard library only."""
import json
import sys
import urllib.error
import urllib.request


def call(port, method, path, token=None, body=None):
    """`method path` on siaga's API at 127.0.0.1:`port`, with the bearer `token` and the
    JSON `body` when given: (status, decoded JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def login(port, user, password):
    """The session token of `user`; prints why and exits 1 when the login fails."""
    status, body = call(port, "POST", "/api/login", body={"username": user, "password": password})
    if status != 200:
        print(f"login {status} {body}")
        sys.exit(1)
    return body["token"]
