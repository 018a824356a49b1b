"""The HTTP face of the store: Kubernetes REST paths, discovery, watch streams, Status errors.

A ``ThreadingHTTPServer`` speaking HTTP/1.1: one thread per connection, keep-alive for
ordinary requests and chunked transfer for watch streams, which hold their thread until
they end (timeoutSeconds, client gone, fault injection or shutdown).
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import structlog
import yaml

from controller.sim import discovery, openapi, protobuf, self_review, tables
from controller.sim.errors import (
    ApiError,
    bad_request,
    forbidden,
    group_resource,
    internal_error,
    method_not_allowed,
    not_found,
    unauthorized,
)
from controller.sim.faults import Faults
from controller.sim.objects import Stored, dumps
from controller.sim.patching import APPLY_PATCH
from controller.sim.request_audit import (
    ANONYMOUS,
    ApiRequest,
    Authorizer,
    RequestHook,
    request_attributes,
)
from controller.sim.resources import ResourceType
from controller.sim.store import Store

JsonDict = dict[str, Any]
log = structlog.get_logger("changelane.sim")

_PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class Route:
    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch_path: bool


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        store: Store,
        faults: Faults,
        *,
        token: str | None,
        bookmark_interval: float,
        users: dict[str, str] | None = None,
        request_hooks: list[RequestHook] | None = None,
        authorizer: list[Authorizer] | None = None,
    ) -> None:
        self.store = store
        self.faults = faults
        self.token = token
        #: bearer token -> user name, for requests that must be told apart (RBAC tests)
        self.users = users if users is not None else {}
        #: called with every request's authorization attributes; empty (off) by default
        self.request_hooks = request_hooks if request_hooks is not None else []
        #: at most one: decides each request (False answers 403); none: everything allowed
        self.authorizer = authorizer if authorizer is not None else []
        self.bookmark_interval = bookmark_interval
        self.stopping = threading.Event()
        super().__init__(address, ApiHandler)


class ApiHandler(BaseHTTPRequestHandler):
    server: SimServer
    protocol_version = "HTTP/1.1"
    server_version = "changelane-sim"
    # headers and body go out in separate writes; with Nagle on, a keep-alive client's
    # delayed ACK turns that into ~40 ms per request
    disable_nagle_algorithm = True

    # quiet: the access log of a test server is noise
    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------------ plumbing

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path).rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self._read_body()
        try:
            user = ANONYMOUS if path in _PUBLIC_PATHS else self._authenticate()
            user = self._impersonate(user)
            if (self.server.request_hooks or self.server.authorizer) and not (
                path.startswith("/_sim/") or path in _PUBLIC_PATHS
            ):
                self._audit_and_authorize(method, path, query, user)
            if method == "POST" and path in self_review.PATHS:
                self._self_review(path, body, user)
                return
            if path.startswith("/_sim/"):
                self._admin(method, path, body)
                return
            verb = _verb(method, path, query)
            delay, fault = self.server.faults.check(verb, path)
            if delay:
                time.sleep(delay)
            if fault is not None:
                raise fault
            self._route(method, path, query, body)
        except ApiError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug must answer 500, never hang the client
            log.exception("sim.request_failed", method=method, path=path)
            self._send_error(internal_error(repr(exc)))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authenticate(self) -> str:
        """The user the request's bearer token names; anonymous when the cluster requires
        no token and none of its named users' tokens was sent."""
        header = self.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        for user_token, user in list(self.server.users.items()):
            if hmac.compare_digest(given.encode(), user_token.encode()):
                return user
        token = self.server.token
        if token is None:
            return ANONYMOUS
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise unauthorized()
        return "admin"

    def _self_review(self, path: str, body: bytes, user: str) -> None:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        review = protobuf.decode(body) if ctype == protobuf.CONTENT_TYPE else self._parse_body(body)
        answer = self_review.review(
            path,
            review,
            user=user,
            user_agent=self.headers.get("User-Agent", ""),
            authorizers=list(self.server.authorizer),
        )
        self._send_json(201, answer)

    def _impersonate(self, user: str) -> str:
        """``Impersonate-User`` (``kubectl --as``), when the caller may impersonate users."""
        target = self.headers.get("Impersonate-User")
        if not target:
            return user
        request = ApiRequest(
            user, self.headers.get("User-Agent", ""), "POST", "", "impersonate", True,
            resource="users", name=target,
        )  # fmt: skip
        for authorize in list(self.server.authorizer):
            if not authorize(request):
                raise _forbidden(request)
        return target

    def _audit_and_authorize(
        self, method: str, path: str, query: dict[str, str], user: str
    ) -> None:
        request = request_attributes(
            method, path, query, user=user, user_agent=self.headers.get("User-Agent", "")
        )
        for hook in list(self.server.request_hooks):
            hook(request)
        if method == "POST" and path in self_review.PATHS:
            return  # system:basic-user: every user may ask about itself
        for authorize in list(self.server.authorizer):
            if not authorize(request):
                raise _forbidden(request)

    def _send(
        self,
        code: int,
        payload: bytes,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_json(self, code: int, obj: Any, warnings: list[str] | None = None) -> None:
        headers = {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)} if warnings else None
        self._send(code, dumps(obj), headers=headers)

    def _send_error(self, err: ApiError) -> None:
        headers = {}
        if err.retry_after_seconds is not None:
            headers["Retry-After"] = str(err.retry_after_seconds)
        self._send(err.code, dumps(err.status()), headers=headers)

    def _parse_body(self, body: bytes) -> Any:
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if not body.strip():
            raise bad_request("the request body is empty; expected an object")
        if ctype in {"application/yaml", "application/x-yaml", "text/yaml", APPLY_PATCH}:
            try:
                return yaml.safe_load(body)
            except yaml.YAMLError as exc:
                raise bad_request(f"error converting YAML to JSON: {exc}") from exc
        if ctype == "application/vnd.kubernetes.protobuf":
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json, application/yaml",
            )
        try:
            # Like the real API server (Go's JSON decoder): invalid UTF-8 bytes and lone
            # UTF-16 surrogates in strings are not errors; each becomes U+FFFD.
            return _replace_lone_surrogates(json.loads(body.decode("utf-8", errors="replace")))
        except json.JSONDecodeError as exc:
            raise bad_request(
                f"couldn't get version/kind; json parse error: {exc.args[0] if exc.args else exc}"
            ) from exc

    # ------------------------------------------------------------------ routing

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        store = self.server.store
        registry = store.registry
        if path in {"/healthz", "/livez", "/readyz"}:
            self._send(200, b"ok", content_type="text/plain")
            return
        if method == "GET":
            doc = self._discovery(path)
            if doc is not None:
                self._send_json(200, doc)
                return
        segments = [s for s in path.split("/") if s]
        if not segments or segments[0] not in {"api", "apis"}:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if segments[0] == "api":
            group, version, rest = "", segments[1] if len(segments) > 1 else "", segments[2:]
        else:
            if len(segments) < 3:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            group, version, rest = segments[1], segments[2], segments[3:]
        route = _parse_route(registry, group, version, rest)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        handler = {
            "GET": self._get,
            "POST": self._post,
            "PUT": self._put,
            "PATCH": self._patch,
            "DELETE": self._delete,
        }[method]
        handler(route, query, body)

    def _discovery(self, path: str) -> JsonDict | None:
        registry = self.server.store.registry
        if path == "/version":
            return discovery.version_info()
        if path == "/api":
            host, port = self.server.server_address[:2]
            return discovery.core_versions(f"{host!s}:{port}")
        if path == "/apis":
            return discovery.group_list(registry)
        if path == "/api/v1":
            return discovery.resource_list(registry, "", "v1")
        if path == "/openapi/v3":
            return openapi.root_document(registry)
        if path == "/openapi/v2":
            accept = self.headers.get("Accept") or "*/*"
            if not any(t in accept for t in ("application/json", "*/*")):
                # kubectl asks for gnostic protobuf only, which the simulated cluster does
                # not encode: it answers as a server without v2 does (kubectl then uses v3).
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return openapi.swagger_document(registry)
        if path.startswith("/openapi/v3/"):
            rest = path[len("/openapi/v3/") :].split("/")
            if rest[0] == "api" and len(rest) == 2:
                return openapi.group_version_document(registry, "", rest[1])
            if rest[0] == "apis" and len(rest) == 3:
                return openapi.group_version_document(registry, rest[1], rest[2])
        segments = [s for s in path.split("/") if s]
        if segments and segments[0] == "apis":
            if len(segments) == 2:
                return discovery.group(registry, segments[1])
            if len(segments) == 3:
                return discovery.resource_list(registry, segments[1], segments[2])
        return None

    # ------------------------------------------------------------------ verbs

    def _get(self, route: Route, query: dict[str, str], _body: bytes) -> None:
        store = self.server.store
        rtype = route.rtype
        if route.name is None:
            if route.watch_path or _truthy(query.get("watch")):
                self._watch(route, query)
            else:
                self._list(route, query)
            return
        if route.subresource == "scale":
            self._send_json(200, store.scale(rtype, route.namespace, route.name))
            return
        if route.subresource not in (None, "status"):
            raise not_found(rtype.group, f"{rtype.plural}/{route.subresource}", route.name)
        stored = store.get(rtype, route.namespace, route.name)
        accept = self.headers.get("Accept", "")
        if "as=Table" in accept:
            table = tables.table(
                rtype,
                [store.to_obj(rtype, stored)],
                resource_version=str(stored.rv),
                include_object=query.get("includeObject", "Metadata"),
            )
            self._send_json(200, table)
        elif "as=PartialObjectMetadata" in accept:
            self._send_json(200, tables.partial_metadata(store.to_obj(rtype, stored)))
        else:
            self._send(200, store.render(rtype, stored))

    def _list(self, route: Route, query: dict[str, str]) -> None:
        store = self.server.store
        rtype = route.rtype
        result = store.list(
            rtype,
            route.namespace,
            label_selector=query.get("labelSelector"),
            field_selector=query.get("fieldSelector"),
            limit=_int(query.get("limit"), "limit"),
            continue_token=query.get("continue") or None,
        )
        accept = self.headers.get("Accept", "")
        if "as=Table" in accept:
            table = tables.table(
                rtype,
                [store.to_obj(rtype, s) for s in result.items],
                resource_version=str(result.resource_version),
                include_object=query.get("includeObject", "Metadata"),
                continue_token=result.continue_token,
            )
            self._send_json(200, table)
            return
        meta: JsonDict = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            meta["continue"] = result.continue_token
            meta["remainingItemCount"] = result.remaining
        if "as=PartialObjectMetadataList" in accept:
            self._send_json(
                200,
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": [
                        tables.partial_metadata(store.to_obj(rtype, s)) for s in result.items
                    ],
                },
            )
            return
        head = dumps({"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": meta})
        items = b",".join(store.render(rtype, s) for s in result.items)
        self._send(200, head[:-1] + b',"items":[' + items + b"]}")

    def _watch(self, route: Route, query: dict[str, str]) -> None:
        server = self.server
        store = server.store
        rtype = route.rtype
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        send_initial = _truthy(query.get("sendInitialEvents")) or None
        timeout = _int(query.get("timeoutSeconds"), "timeoutSeconds")
        lifetime = server.faults.watch_lifetime_seconds
        limits = [t for t in (float(timeout) if timeout else None, lifetime) if t]
        deadline = time.monotonic() + min(limits) if limits else None
        accept = self.headers.get("Accept", "")
        render = None
        if "as=Table" in accept:
            include = query.get("includeObject", "Metadata")

            def render(kind: str, stored: Stored) -> bytes:
                obj = store.to_obj(rtype, stored)
                table = tables.table(
                    rtype, [obj], resource_version=str(stored.rv), include_object=include
                )
                return dumps({"type": kind, "object": table}) + b"\n"

        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        try:
            watcher = store.watch(
                rtype,
                route.namespace,
                label_selector=query.get("labelSelector"),
                field_selector=query.get("fieldSelector"),
                resource_version=query.get("resourceVersion"),
                send_initial_events=send_initial,
                initial_events_bookmark=bool(send_initial and bookmarks),
                render=render,
            )
        except ApiError as err:
            # the apiserver reports a failed watch (e.g. 410) as an ERROR event in a 200 stream
            self._chunk(dumps({"type": "ERROR", "object": err.status()}) + b"\n")
            self._chunk(b"")
            return
        last_sent = time.monotonic()
        try:
            while not server.stopping.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                wait = server.bookmark_interval if bookmarks else 1.0
                if deadline is not None:
                    wait = min(wait, deadline - now)
                lines = watcher.take(max(0.01, wait))
                if lines is None:
                    self.close_connection = watcher.dropped
                    break
                if lines:
                    self._chunk(b"".join(lines))
                    last_sent = time.monotonic()
                elif bookmarks and time.monotonic() - last_sent >= server.bookmark_interval:
                    line = store.bookmark_if_idle(watcher, rtype)
                    if line is not None:
                        self._chunk(line)
                        last_sent = time.monotonic()
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            store.stop_watch(watcher)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _post(self, route: Route, query: dict[str, str], body: bytes) -> None:
        if route.name is not None:
            raise method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        obj = self._parse_body(body)
        warnings: list[str] = []
        stored = self.server.store.create(
            route.rtype,
            obj,
            namespace=route.namespace,
            field_validation=_field_validation(query),
            dry_run=_dry_run(query),
            warnings=warnings,
            field_manager=self._field_manager(query),
        )
        self._send_stored(201, route.rtype, stored, warnings)

    def _put(self, route: Route, query: dict[str, str], body: bytes) -> None:
        if route.name is None:
            raise method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        obj = self._parse_body(body)
        store = self.server.store
        if route.subresource == "scale":
            replicas = ((obj or {}).get("spec") or {}).get("replicas", 0)
            rv = ((obj or {}).get("metadata") or {}).get("resourceVersion")
            manager = self._field_manager(query)
            scaled = store.set_scale(
                route.rtype, route.namespace, route.name, int(replicas), rv, field_manager=manager
            )
            self._send_json(200, scaled)
            return
        warnings: list[str] = []
        stored = store.update(
            route.rtype,
            obj,
            namespace=route.namespace,
            name=route.name,
            subresource=route.subresource,
            field_validation=_field_validation(query),
            dry_run=_dry_run(query),
            warnings=warnings,
            field_manager=self._field_manager(query),
        )
        self._send_stored(200, route.rtype, stored, warnings)

    def _field_manager(self, query: dict[str, str]) -> str:
        """``?fieldManager=``, else the User-Agent's product (as the API server derives it)."""
        manager = query.get("fieldManager")
        if manager is None:
            agent = self.headers.get("User-Agent") or "unknown"
            manager = agent.split("/", 1)[0].strip() or "unknown"
        if not manager or len(manager) > 128:
            raise ApiError(
                422,
                "Invalid",
                f"fieldManager: Invalid value: {manager!r}: must be between 1 and 128 characters",
            )
        return manager

    def _apply(self, route: Route, query: dict[str, str], body: bytes) -> None:
        config = self._parse_body(body)
        if "fieldManager" not in query:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch",
            )
        warnings: list[str] = []
        stored, created = self.server.store.apply(
            route.rtype,
            route.namespace,
            str(route.name),
            config,
            field_manager=self._field_manager(query),
            force=_truthy(query.get("force")),
            subresource=route.subresource,
            field_validation=_field_validation(query),
            dry_run=_dry_run(query),
            warnings=warnings,
        )
        self._send_stored(201 if created else 200, route.rtype, stored, warnings)

    def _patch(self, route: Route, query: dict[str, str], body: bytes) -> None:
        if route.name is None:
            raise method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype == APPLY_PATCH:
            self._apply(route, query, body)
            return
        if query.get("force") is not None:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified '
                "for non-apply patch",
            )
        patch = self._parse_body(body)
        store = self.server.store
        if route.subresource == "scale":
            replicas = ((patch or {}).get("spec") or {}).get("replicas")
            if not isinstance(replicas, int):
                raise bad_request("spec.replicas: expected an integer")
            manager = self._field_manager(query)
            scaled = store.set_scale(
                route.rtype, route.namespace, route.name, replicas, field_manager=manager
            )
            self._send_json(200, scaled)
            return
        warnings: list[str] = []
        stored = store.patch(
            route.rtype,
            route.namespace,
            route.name,
            patch,
            ctype,
            subresource=route.subresource,
            field_validation=_field_validation(query),
            dry_run=_dry_run(query),
            warnings=warnings,
            field_manager=self._field_manager(query),
        )
        self._send_stored(200, route.rtype, stored, warnings)

    def _delete(self, route: Route, query: dict[str, str], body: bytes) -> None:
        store = self.server.store
        options: JsonDict = {}
        if body.strip():
            parsed = self._parse_body(body)
            if isinstance(parsed, dict):
                options = parsed
        propagation = (
            query.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
        )
        dry_run = _dry_run(query) or bool(options.get("dryRun"))
        if route.name is None:
            result = store.list(
                route.rtype,
                route.namespace,
                label_selector=query.get("labelSelector"),
                field_selector=query.get("fieldSelector"),
            )
            deleted = []
            for item in result.items:
                try:
                    removed, _ = store.delete(
                        route.rtype,
                        item.namespace,
                        item.name,
                        propagation=propagation,
                        dry_run=dry_run,
                    )
                    deleted.append(store.to_obj(route.rtype, removed))
                except ApiError:
                    continue
            self._send_json(
                200,
                {
                    "kind": route.rtype.list_kind,
                    "apiVersion": route.rtype.api_version,
                    "metadata": {"resourceVersion": str(store.resource_version)},
                    "items": deleted,
                },
            )
            return
        found, gone = store.delete(
            route.rtype,
            route.namespace,
            route.name,
            preconditions=options.get("preconditions"),
            propagation=propagation,
            dry_run=dry_run,
        )
        self._send_stored(200 if gone else 202, route.rtype, found, None)

    def _send_stored(
        self, code: int, rtype: ResourceType, stored: Stored, warnings: list[str] | None
    ) -> None:
        headers = {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)} if warnings else None
        self._send(code, self.server.store.render(rtype, stored), headers=headers)

    # ------------------------------------------------------------------ admin

    def _admin(self, method: str, path: str, body: bytes) -> None:
        faults = self.server.faults
        if path == "/_sim/faults":
            if method == "GET":
                self._send_json(200, faults.snapshot())
            elif method == "POST":
                try:
                    rule = faults.configure(json.loads(body or b"{}"))
                except (ValueError, TypeError, json.JSONDecodeError) as exc:
                    raise bad_request(str(exc)) from exc
                self._send_json(201, rule.as_dict() if rule else faults.snapshot())
            elif method == "DELETE":
                faults.clear()
                self._send_json(200, faults.snapshot())
            else:
                raise method_not_allowed("GET, POST or DELETE")
        elif path == "/_sim/drop-watches" and method == "POST":
            self._send_json(200, {"dropped": faults.drop_watches()})
        elif path == "/_sim/compact" and method == "POST":
            self._send_json(200, {"compactedResourceVersion": faults.compact()})
        elif path == "/_sim/state" and method == "GET":
            store = self.server.store
            self._send_json(
                200,
                {
                    "resourceVersion": store.resource_version,
                    "compactedResourceVersion": store.compacted_resource_version,
                    "watchers": store.watcher_count(),
                },
            )
        else:
            raise ApiError(404, "NotFound", f"no admin endpoint {method} {path}")


def _forbidden(request: ApiRequest) -> ApiError:
    """The API server's RBAC denial, worded as it words it."""
    who = f'User "{request.user}"'
    if not request.resource_request:
        return ApiError(
            403,
            "Forbidden",
            f'forbidden: {who} cannot {request.verb} path "{request.path}"',
        )
    scope = (
        f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    )
    why = (
        f'{who} cannot {request.verb} resource "{request.rbac_resource}" '
        f'in API group "{request.api_group}" {scope}'
    )
    if request.name:
        return forbidden(request.api_group, request.resource, request.name, why)
    what = group_resource(request.api_group, request.resource)
    return ApiError(
        403,
        "Forbidden",
        f"{what} is forbidden: {why}",
        group=request.api_group,
        kind=request.resource,
    )


def _parse_route(registry: Any, group: str, version: str, rest: list[str]) -> Route | None:
    watch_path = False
    if rest and rest[0] == "watch":
        watch_path, rest = True, rest[1:]
    if not rest:
        return None
    namespace: str | None = None
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (group == "" and rest[2] in _NAMESPACE_SUBRESOURCES and len(rest) == 3)
    ):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    rtype = registry.find(group, version, plural)
    if rtype is None:
        return None
    if namespace is not None and not rtype.namespaced:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if len(rest) > 3:
        return None
    if sub is not None and not (
        (sub == "status" and rtype.status_subresource)
        or (sub == "scale" and rtype.scale_subresource)
    ):
        return None
    return Route(rtype, namespace, name, sub, watch_path)


def _verb(method: str, path: str, query: dict[str, str]) -> str:
    segments = [s for s in path.split("/") if s]
    if method == "GET":
        if "/watch/" in path or _truthy(query.get("watch")):
            return "watch"
        # .../plural is a list, .../plural/name a get; namespaces make this ambiguous, so
        # count from the group/version prefix
        base = 2 if segments and segments[0] == "api" else 3
        rest = segments[base:]
        if rest and rest[0] == "namespaces" and len(rest) >= 3:
            rest = rest[2:]
        return "list" if len(rest) <= 1 else "get"
    return {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }.get(method, method.lower())


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in {"1", "true", "yes"}


def _int(value: str | None, name: str) -> int:
    if value in (None, ""):
        return 0
    try:
        return max(0, int(str(value)))
    except ValueError as exc:
        raise bad_request(f"{name}: expected an integer, got {value!r}") from exc


def _field_validation(query: dict[str, str]) -> str:
    value = query.get("fieldValidation") or "Strict"
    if value not in {"Strict", "Warn", "Ignore"}:
        raise bad_request(
            f"fieldValidation: Invalid value: {value!r}: must be one of Ignore, Warn, Strict"
        )
    return value


def _dry_run(query: dict[str, str]) -> bool:
    return query.get("dryRun") == "All"


def serve(server: SimServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="sim-apiserver", daemon=True)
    thread.start()
    return thread


def shutdown(server: SimServer) -> None:
    server.stopping.set()
    server.store.drop_watches()
    server.shutdown()
    server.server_close()


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_lone_surrogates(v) for v in value]
    return value
