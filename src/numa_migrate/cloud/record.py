"""Record a real cloud's answers, and answer from a recording (tests only replay what was
recorded on the lab's real OpenStack; nothing here makes an answer up).

A recording is JSON Lines, one exchange a line::

    {"service": "compute", "method": "GET", "path": "/servers/ID/topology",
     "microversion": "2.79", "request": null, "status": 200, "body": {...}}

On replay, the exchanges of one (service, method, path, microversion) are answered in the
order they were recorded; the last one repeats (a poll that saw a final state goes on
seeing it). A request that was never recorded is an error naming it.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from numa_migrate.cloud.api import API_BOUNDS, CloudApi, CloudError, Response
from numa_migrate.inputs.documents import parse_json
from numa_migrate.inputs.files import read_bytes

Key = tuple[str, str, str, str | None]


class RecordingApi:
    def __init__(self, inner: CloudApi, path: str | Path) -> None:
        self._inner = inner
        self._path = Path(path)

    @property
    def name(self) -> str:
        return self._inner.name

    def request(self, service: str, method: str, path: str, *,
                microversion: str | None = None, body: Any = None,
                data: bytes | None = None) -> Response:
        response = self._inner.request(service, method, path, microversion=microversion,
                                       body=body, data=data)
        sent = body if data is None else {"bytes": len(data)}
        line = {"service": service, "method": method, "path": path,
                "microversion": microversion, "request": sent,
                "status": response.status, "body": response.body}
        with self._path.open("a") as out:
            out.write(json.dumps(line, sort_keys=True) + "\n")
        return response


class ReplayApi:
    def __init__(self, exchanges: list[dict[str, Any]], name: str = "replay") -> None:
        self._name = name
        self._queues: dict[Key, deque[Response]] = defaultdict(deque)
        self._last: dict[Key, Response] = {}
        self.sent: list[tuple[Key, Any]] = []
        for ex in exchanges:
            key = (ex["service"], ex["method"], ex["path"], ex.get("microversion"))
            self._queues[key].append(Response(int(ex["status"]), ex.get("body")))

    @classmethod
    def load(cls, path: str | Path, name: str = "replay") -> ReplayApi:
        data = read_bytes(path, what="recorded API responses", max_bytes=API_BOUNDS.max_bytes)
        lines = data.decode().splitlines()
        exchanges = [parse_json(line, source=f"{path} line {n}")
                     for n, line in enumerate(lines, 1) if line.strip()]
        return cls(exchanges, name)

    @property
    def name(self) -> str:
        return self._name

    def request(self, service: str, method: str, path: str, *,
                microversion: str | None = None, body: Any = None,
                data: bytes | None = None) -> Response:
        key = (service, method, path, microversion)
        self.sent.append((key, body if data is None else {"bytes": len(data)}))
        queue = self._queues.get(key)
        if queue:
            self._last[key] = queue.popleft()
            return self._last[key]
        if key in self._last:
            return self._last[key]
        raise CloudError(f"replay: no recorded answer to {service} {method} {path} "
                         f"(microversion {microversion})")
