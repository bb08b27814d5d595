"""A small REST client for bringing the lab's OpenStack up (Keystone catalog, Glance image,
service checks): standard library only, so ``lab openstack up`` needs no SDK."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from numa_migrate.lab.errors import LabError

TIMEOUT_S = 60.0


class RestError(LabError):
    def __init__(self, method: str, url: str, status: int | None, detail: str) -> None:
        self.status = status
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{method} {url}: {where}: {detail}")


def call(method: str, url: str, *, token: str | None = None, body: Any = None,
         data: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = TIMEOUT_S) -> tuple[int, dict[str, str], Any]:
    """One request; returns (status, headers, JSON body or None). 4xx/5xx raise RestError."""
    all_headers = {"Accept": "application/json", "Connection": "close", **(headers or {})}
    if token:
        all_headers["X-Auth-Token"] = token
    payload = data
    if body is not None:
        payload = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=payload, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
            got = {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace").strip()
        raise RestError(method, url, exc.code, text[:300] or exc.reason) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RestError(method, url, None, str(reason)) from None
    parsed = json.loads(raw) if raw and got.get("content-type", "").startswith(
        "application/json") else None
    return status, got, parsed


def answers(url: str, timeout: float = 3.0) -> bool:
    """True when something answers HTTP at ``url`` (any status: even 401 is an answer)."""
    try:
        call("GET", url, timeout=timeout)
    except RestError as exc:
        return exc.status is not None
    return True


def token(auth_url: str, user: str, password: str, project: str) -> str:
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}},
    }}
    _status, headers, _body = call("POST", f"{auth_url}/auth/tokens", body=body)
    value = headers.get("x-subject-token")
    if not value:
        raise LabError(f"Keystone at {auth_url} gave no token to {user}")
    return value
