"""The one place that talks HTTP to an OpenStack cloud: openstacksdk's session, raw JSON.

:class:`CloudApi` is the seam: :class:`SdkApi` calls a real cloud through openstacksdk
(selected like openstackclient: ``--cloud NAME``, else ``OS_CLOUD``, else the ``OS_*``
variables), :class:`~numa_migrate.cloud.record.ReplayApi` answers from responses recorded
on the lab's real OpenStack. Every answer body is parsed with the bounded JSON reader
(sizes, depth, duplicate keys), never trusted as it comes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Protocol

from numa_migrate.core.errors import NumaMigrateError, ParseError
from numa_migrate.inputs.bounds import DocBounds
from numa_migrate.inputs.documents import parse_json

# Nova's microversion for everything we read: 2.79 has the server topology API (2.78), the
# flavor with its extra specs embedded in the server (2.47), live migration to a named host
# without force (2.68) and migration filters (2.59); every release since Train has it.
COMPUTE_MICROVERSION = "2.79"
PLACEMENT_MICROVERSION = "1.14"
API_BOUNDS = DocBounds(max_bytes=32 << 20)
API_TIMEOUT_S = 120.0
"""No answer from an API within this time is an error (openstacksdk waits forever else)."""
CONFIG_MAX_BYTES = 1 << 20
SERVICES = ("compute", "placement", "image", "identity")


class CloudError(NumaMigrateError):
    """The cloud cannot be reached, refuses us, or answered something we cannot use."""


class CloudConfigError(CloudError, ParseError):
    """No such cloud, or credentials missing (nothing was sent)."""


class CloudAuthError(CloudError):
    """The cloud refused the credentials."""


class CloudResponseError(ParseError):
    """An answer that is not the JSON we expect (a field path names what is wrong)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def fault(self) -> str:
        """The error message Nova/Placement/Glance put in an error body, in one line."""
        body = self.body
        if isinstance(body, dict):
            for value in body.values():
                if isinstance(value, dict) and isinstance(value.get("message"), str):
                    return " ".join(value["message"].split())
            errors = body.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                return " ".join(str(errors[0].get("detail", "")).split())
        return f"HTTP {self.status}"


class CloudApi(Protocol):
    @property
    def name(self) -> str: ...

    def request(self, service: str, method: str, path: str, *,
                microversion: str | None = None, body: Any = None,
                data: bytes | None = None) -> Response:
        """One request: ``body`` is sent as JSON, ``data`` as raw bytes (an image upload)."""
        ...


def _microversion_header(service: str, microversion: str | None) -> dict[str, str]:
    if microversion is None:
        return {}
    kind = {"compute": "compute", "placement": "placement"}.get(service)
    return {"OpenStack-API-Version": f"{kind} {microversion}"} if kind else {}


class SdkApi:
    """A real cloud through openstacksdk's authenticated session."""

    def __init__(self, conn: Any, name: str) -> None:
        self._conn = conn
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def request(self, service: str, method: str, path: str, *,
                microversion: str | None = None, body: Any = None,
                data: bytes | None = None) -> Response:
        if service not in SERVICES:
            raise CloudError(f"unknown OpenStack service {service!r}")
        from keystoneauth1 import exceptions as ks

        from openstack import exceptions as sdk_exc

        kwargs: dict[str, Any] = {"raise_exc": False,
                                  "headers": _microversion_header(service, microversion)}
        if body is not None:
            kwargs["json"] = body
        if data is not None:
            kwargs["data"] = data
            kwargs["headers"]["Content-Type"] = "application/octet-stream"
        try:
            # the first use of a service authenticates and discovers its endpoint
            proxy = getattr(self._conn, service)
            raw = proxy.request(path, method, **kwargs)
        except (ks.Unauthorized, sdk_exc.HttpException) as exc:
            status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
            if not isinstance(exc, ks.Unauthorized) and status != 401:
                raise CloudError(f"cloud {self._name}: {service} {method} {path}: "
                                 f"{_one_line(exc)}") from None
            raise CloudAuthError(f"cloud {self._name}: the credentials were refused "
                                 f"({_one_line(exc)})") from None
        except ks.EndpointNotFound:
            raise CloudError(f"cloud {self._name}: its catalog has no {service} endpoint") \
                from None
        except (ks.ConnectFailure, ks.ConnectTimeout, ks.DiscoveryFailure) as exc:
            what = "Keystone" if "/auth/" in str(exc) else f"the {service} API"
            raise CloudError(f"cloud {self._name}: cannot reach {what} "
                             f"({_one_line(exc)})") from None
        except (ks.ClientException, sdk_exc.SDKException) as exc:
            raise CloudError(f"cloud {self._name}: {service} {method} {path}: "
                             f"{_one_line(exc)}") from None
        if raw.status_code == 401:
            raise CloudAuthError(f"cloud {self._name}: the credentials were refused")
        content = raw.content or b""
        parsed: Any = None
        if content and "json" in raw.headers.get("Content-Type", ""):
            parsed = parse_json(content, source=f"{service} {method} {path}",
                                bounds=API_BOUNDS, error=CloudResponseError)
        return Response(raw.status_code, parsed, raw.headers.get("x-openstack-request-id"))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _check_config_files(label: str) -> None:
    """openstacksdk reads clouds.yaml, secure.yaml and clouds-public.yaml itself, with no
    bound: each one it would read is read here first with ours (a regular file of at most
    1 MiB; YAML without anchors, aliases or tags; JSON without its blow-ups), so a huge or
    hostile one is one line, not a hang."""
    from openstack.config import loader

    from numa_migrate.inputs.documents import parse_json
    from numa_migrate.inputs.files import read_bytes
    from numa_migrate.inputs.yamldoc import parse_yaml

    candidates = [*loader.CONFIG_FILES, *loader.SECURE_FILES, *loader.VENDOR_FILES]
    for env in ("OS_CLIENT_CONFIG_FILE", "OS_CLIENT_SECURE_FILE"):
        if os.environ.get(env):
            candidates.insert(0, os.environ[env])
    for path in dict.fromkeys(candidates):
        if not os.path.exists(path):
            continue
        try:
            data = read_bytes(path, what="clouds.yaml-style file",
                              max_bytes=CONFIG_MAX_BYTES, error=CloudConfigError)
            parse = parse_json if path.endswith(".json") else parse_yaml
            parse(data, source=path, error=CloudConfigError)
        except CloudConfigError as exc:
            raise CloudConfigError(f"cloud {label}: {exc}") from None


def connect_cloud(name: str | None) -> CloudApi:
    """The cloud ``name`` (clouds.yaml), else ``$OS_CLOUD``, else the ``OS_*`` variables.

    ``$NUMA_MIGRATE_RECORD=FILE`` appends every exchange (request, status, answer; no
    credentials: those travel in Keystone's session) to FILE as JSON Lines: what a bug report
    needs, and how the adapter's test fixtures are recorded from a real cloud."""
    try:
        import openstack
        from openstack import exceptions as sdk_exc
    except ImportError:
        raise CloudConfigError("--cloud needs openstacksdk: pip install 'numa-migrate[openstack]'"
                               " (or: pip install openstacksdk)") from None
    # keystoneauth and openstacksdk log their retries and discovery fallbacks on stderr;
    # the command's own one-line error says what failed
    for logger in ("keystoneauth", "openstack", "stevedore"):
        logging.getLogger(logger).setLevel(logging.CRITICAL)
    label = name or os.environ.get("OS_CLOUD") or "from OS_* variables"
    _check_config_files(label)
    try:
        conn = openstack.connect(cloud=name, load_yaml_config=True, load_envvars=True,
                                 api_timeout=API_TIMEOUT_S)
    except sdk_exc.ConfigException as exc:
        raise CloudConfigError(f"cloud {label}: {_one_line(exc)} (clouds.yaml is looked for "
                               "in $OS_CLIENT_CONFIG_FILE, ./, ~/.config/openstack/ and "
                               "/etc/openstack/)") from None
    except Exception as exc:  # openstacksdk raises many kinds while reading its config
        raise CloudConfigError(f"cloud {label}: {_one_line(exc)}") from None
    api: CloudApi = SdkApi(conn, name or os.environ.get("OS_CLOUD") or "OS_* cloud")
    record = os.environ.get("NUMA_MIGRATE_RECORD")
    if record:
        from numa_migrate.cloud.record import RecordingApi

        api = RecordingApi(api, record)
    return api
