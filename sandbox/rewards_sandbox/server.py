"""HTTP server of the sandbox: routing, fault injection, latency, request log and inspection.

Vendor paths: ``/partner/*`` (Thanx) and ``/api/v1/integration/*`` (HPGames). Inspection paths,
never subject to faults or latency and not recorded in the request log:

- ``GET  /_sandbox/state``    every job (with its current derived state) and reward, by merchant
- ``POST /_sandbox/reset``    back to the seed
- ``GET  /_sandbox/requests`` the request log (``?limit=N`` for the last N); ``DELETE`` clears it
- ``GET|POST /_sandbox/faults`` read / set ``{"rate": .., "seed": .., "kinds": [..]}`` and the
  behaviours ``{"rate_limit": "5/s,2000/900s"|null, "retry_after_override": N|null,
  "already_cancelled": "ok"|"refuse", "error_200_actions": ["bulkCancel", ..]}`` (any subset)
- ``GET|POST /_sandbox/clock`` read / move the vendor clock: ``{"now_ms": ..}``, ``{"advance_s": ..}``
  or ``{"real_time": true}``
- ``GET  /_sandbox/health``   ``{"status": "ok"}``
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import random
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from rewards_sandbox import hpgames_api, thanx_api
from rewards_sandbox.clock import SandboxClock
from rewards_sandbox.config import (
    RateLimitSpec,
    SandboxConfig,
    check_already_cancelled,
    check_fault_rate,
    normalize_error_200_actions,
    normalize_fault_kinds,
    parse_rate_limit,
)
from rewards_sandbox.errors import (
    THANX_BAD_REQUEST,
    THANX_GENERIC_ERROR,
    THANX_NOT_FOUND,
    THANX_TOO_MANY_REQUESTS,
    HpgError,
    HpgErrorCode,
    ThanxError,
)
from rewards_sandbox.protocol import ApiRequest, ApiResponse, BodyError, parse_json_object
from rewards_sandbox.ratelimit import RateLimiter
from rewards_sandbox.requestlog import body_facts
from rewards_sandbox.seed import demo_seed, load_seed_file
from rewards_sandbox.state import SandboxState

SANDBOX_PREFIX = "/_sandbox"
FaultKinds = Iterable[str | int]
MAX_BODY_BYTES = 32 * 1024 * 1024
_FAULT_TEXTS = {
    "429": "Too many requests",
    "500": "Something went wrong",
    "503": "Service temporarily unavailable",
}
ERROR_200_TEXT = "Request rejected (sandbox fault error_200): nothing was changed"
_UNSET: Any = object()
_HPG_FAULT_CODES = {
    "429": HpgErrorCode.RATE_LIMITED,
    "500": HpgErrorCode.INTERNAL_ERROR,
    "503": HpgErrorCode.SERVICE_UNAVAILABLE,
}


class SandboxServer:
    """A local Thanx + HPGames sandbox served over HTTP/1.1 from a background thread.

    ``SandboxServer(config, **overrides)``: ``overrides`` replace fields of ``config`` (or of the
    default :class:`SandboxConfig`). Use :meth:`start`/:meth:`stop` or ``with SandboxServer() as s:``.
    """

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        config = config or SandboxConfig()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        if self.config.seed_file is not None:
            seed = load_seed_file(self.config.seed_file)
        else:
            seed = self.config.seed if self.config.seed is not None else demo_seed()
        self.clock = SandboxClock(self.config.now_ms)
        self.state = SandboxState(
            seed,
            revoke_seconds=self.config.revoke_seconds,
            issue_seconds=self.config.issue_seconds,
            clock=self.clock,
            already_cancelled=self.config.already_cancelled,
            read_all_external_id=self.config.read_all_external_id,
            accept_unknown_ids=self.config.accept_unknown_ids,
        )
        self._fault_lock = threading.Lock()
        self._fault_rate = self.config.fault_rate
        self._fault_seed = self.config.fault_seed
        self._fault_kinds = self.config.fault_kinds
        self._error_200_actions = self.config.error_200_actions
        self._retry_after_override = self.config.retry_after_override
        self.rate_limiter = RateLimiter(parse_rate_limit(self.config.rate_limit))
        self._rng = random.Random(self.config.fault_seed)
        self._log: deque[dict[str, Any]] = deque(maxlen=self.config.request_log_size)
        self._log_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -----------------------------------------------------------------------------------------
    # Lifecycle
    # -----------------------------------------------------------------------------------------
    def start(self) -> str:
        """Bind, serve from a daemon thread and return the base URL."""
        if self._httpd is not None:
            raise RuntimeError("the sandbox is already running")
        self._httpd = _HTTPServer((self.config.host, self.config.port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="rewards-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection (idempotent)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound port (only while running)."""
        if self._httpd is None:
            raise RuntimeError("the sandbox is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server (0.0.0.0 is shown as 127.0.0.1)."""
        host = self.config.host if self.config.host not in ("", "0.0.0.0") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -----------------------------------------------------------------------------------------
    # Runtime control
    # -----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Put every store back to the seed and forget rate-limit counts (faults, clock and log are kept)."""
        self.state.reset()
        self.rate_limiter.clear()

    def set_behaviours(
        self,
        *,
        rate_limit: RateLimitSpec = _UNSET,
        retry_after_override: int | None = _UNSET,
        already_cancelled: str = _UNSET,
        error_200_actions: Iterable[str] | str | None = _UNSET,
    ) -> None:
        """Change the given behaviours (all validated before any is applied).

        ``rate_limit`` (None: no limit) also forgets the requests counted so far.
        """
        windows = None if rate_limit is _UNSET else parse_rate_limit(rate_limit)
        actions = None if error_200_actions is _UNSET else normalize_error_200_actions(error_200_actions)
        if already_cancelled is not _UNSET:
            check_already_cancelled(already_cancelled)
        override_given = retry_after_override is not _UNSET
        if override_given and retry_after_override is not None:
            if isinstance(retry_after_override, bool) or not isinstance(retry_after_override, int):
                raise ValueError("retry_after_override must be an integer number of seconds or null")
            if retry_after_override < 1:
                raise ValueError("retry_after_override must be >= 1 second")
        with self._fault_lock:
            if windows is not None:
                self.rate_limiter.configure(windows)
            if actions is not None:
                self._error_200_actions = actions
            if already_cancelled is not _UNSET:
                self.state.already_cancelled = already_cancelled
            if override_given:
                self._retry_after_override = retry_after_override

    def set_faults(self, rate: float, seed: int | None = None, kinds: FaultKinds | None = None) -> None:
        """Set the fault probability; ``seed`` re-seeds the fault RNG; ``kinds`` None means all kinds."""
        rate = check_fault_rate(rate)
        normalized = normalize_fault_kinds(kinds)
        with self._fault_lock:
            self._fault_rate = rate
            self._fault_kinds = normalized
            if seed is not None:
                self._fault_seed = seed
                self._rng = random.Random(seed)

    def faults(self) -> dict[str, Any]:
        """Current fault settings."""
        with self._fault_lock:
            return {
                "rate": self._fault_rate,
                "seed": self._fault_seed,
                "kinds": list(self._fault_kinds),
                "retry_after_s": self.config.retry_after_s,
                "rate_limit": ",".join(str(w) for w in self.rate_limiter.windows) or None,
                "retry_after_override": self._retry_after_override,
                "already_cancelled": self.state.already_cancelled,
                "error_200_actions": list(self._error_200_actions),
            }

    def snapshot(self) -> dict[str, Any]:
        """The whole state (see ``GET /_sandbox/state``) plus fault settings and the clock."""
        return {**self.state.snapshot(), "faults": self.faults(), "clock": self.clock.as_dict()}

    def request_log(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The recorded vendor requests, oldest first (the last ``limit`` ones if given)."""
        with self._log_lock:
            entries = list(self._log)
        return entries[-limit:] if limit else entries

    def clear_request_log(self) -> None:
        """Forget every recorded request."""
        with self._log_lock:
            self._log.clear()

    # -----------------------------------------------------------------------------------------
    # Request handling (called from handler threads)
    # -----------------------------------------------------------------------------------------
    def _draw_fault(self, *, hpgames: bool) -> str | None:
        """Draw the fault of one request (None most of the time); ``error_200`` only hits HPGames."""
        with self._fault_lock:
            if self._fault_rate <= 0 or self._rng.random() >= self._fault_rate:
                return None
            kinds = self._fault_kinds if hpgames else [k for k in self._fault_kinds if k != "error_200"]
            return self._rng.choice(kinds) if kinds else None

    def _rate_limit_key(self, request: ApiRequest, *, hpgames: bool) -> str | None:
        """The credential a request counts against: Thanx access token (hashed) or HPGames merchantId."""
        if hpgames:
            try:
                merchant_id = json.loads(request.body).get("merchantId")
            except (ValueError, AttributeError):
                return None
            return f"hpgames:{merchant_id.lower()}" if isinstance(merchant_id, str) and merchant_id else None
        scheme, _, token = (request.header("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return "thanx:" + hashlib.sha256(token.strip().encode()).hexdigest()[:16]

    def _retry_after(self, seconds: int) -> str:
        """The Retry-After value: the override when set."""
        override = self._retry_after_override
        return str(override if override is not None else seconds)

    def handle_vendor(self, request: ApiRequest) -> tuple[ApiResponse, str | None]:
        """Answer a vendor request; returns the response and the fault kind (``rate_limit`` included)."""
        if self.config.latency_ms > 0:
            time.sleep(self.config.latency_ms / 1000)
        hpgames = request.path.startswith(hpgames_api.PREFIX)
        vendor = hpgames or request.path.startswith(thanx_api.PREFIX)
        key = self._rate_limit_key(request, hpgames=hpgames) if vendor and self.rate_limiter.windows else None
        wait = self.rate_limiter.admit(key) if key is not None else None
        if wait is not None:
            return self._rate_limited_response(wait, hpgames=hpgames), "rate_limit"
        if hpgames and request.path.removeprefix(hpgames_api.PREFIX) in self._error_200_actions:
            fault: str | None = "error_200"
        else:
            fault = self._draw_fault(hpgames=hpgames)
        if fault == "error_200":
            body = HpgError(200, HpgErrorCode.VALIDATION, ERROR_200_TEXT).body()
            return ApiResponse.json(200, body), fault
        if fault in _FAULT_TEXTS:
            return self._fault_response(fault, hpgames=hpgames), fault
        try:
            if hpgames:
                window = self.config.timestamp_window_s
                response = hpgames_api.handle(self.state, request, timestamp_window_s=window)
            elif request.path.startswith(thanx_api.PREFIX):
                response = thanx_api.handle(self.state, request)
            else:
                error = ThanxError(404, THANX_NOT_FOUND, f"No route for {request.method} {request.path}")
                response = ApiResponse.json(404, error.body())
        except Exception:  # a sandbox bug must still answer like the vendor would
            traceback.print_exc(file=sys.stderr)
            response = self._fault_response("500", hpgames=hpgames)
        return response, fault

    def _fault_response(self, kind: str, *, hpgames: bool) -> ApiResponse:
        """The vendor-shaped error answer of an injected 429/500/503."""
        status, text = int(kind), _FAULT_TEXTS[kind]
        headers = {"Retry-After": self._retry_after(self.config.retry_after_s)} if kind == "429" else {}
        if hpgames:
            body = HpgError(status, _HPG_FAULT_CODES[kind], text).body()
        else:
            code = THANX_TOO_MANY_REQUESTS if kind == "429" else THANX_GENERIC_ERROR
            body = ThanxError(status, code, text).body()
        return ApiResponse.json(status, body, headers)

    def _rate_limited_response(self, wait_s: int, *, hpgames: bool) -> ApiResponse:
        """The 429 of a request over the rate limit, in the vendor's error shape."""
        text = f"Rate limit exceeded: retry in {wait_s} s"
        headers = {"Retry-After": self._retry_after(wait_s)}
        if hpgames:
            return ApiResponse.json(429, HpgError(429, HpgErrorCode.RATE_LIMITED, text).body(), headers)
        return ApiResponse.json(429, ThanxError(429, THANX_TOO_MANY_REQUESTS, text).body(), headers)

    def record(self, request: ApiRequest, status: int, fault: str | None, started: float) -> None:
        """Append one vendor request to the log: never headers or query strings; bodies only as
        batch sizes and digests (``bulkCancel``, ``bulkCancelByQuery``), or with ``log_bodies``.
        """
        hpgames = request.path.startswith(hpgames_api.PREFIX)
        action = request.path.removeprefix(hpgames_api.PREFIX) if hpgames else None
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": request.method,
            "path": request.path,
            "status": status,
            "fault": fault,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            **body_facts(action, request.body, log_bodies=self.config.log_bodies),
        }
        with self._log_lock:
            self._log.append(entry)
        if self.config.log_requests:
            suffix = f" fault={fault}" if fault else ""
            print(
                f"{entry['time']} {request.method} {request.path} {status}{suffix}",
                file=sys.stderr,
                flush=True,
            )

    def handle_admin(self, request: ApiRequest) -> ApiResponse:
        """Answer a ``/_sandbox/*`` inspection request."""
        route = (request.method, request.path.removeprefix(SANDBOX_PREFIX))
        try:
            match route:
                case ("GET", "/state"):
                    return ApiResponse.json(200, self.snapshot())
                case ("POST", "/reset"):
                    self.reset()
                    return ApiResponse.json(200, {"reset": True})
                case ("GET", "/requests"):
                    limit = int((request.query.get("limit") or ["0"])[0])
                    return ApiResponse.json(200, {"requests": self.request_log(limit or None)})
                case ("DELETE", "/requests"):
                    self.clear_request_log()
                    return ApiResponse.json(200, {"cleared": True})
                case ("GET", "/faults"):
                    return ApiResponse.json(200, self.faults())
                case ("POST", "/faults"):
                    body = parse_json_object(request.body)
                    behaviours = {k: body[k] for k in _BEHAVIOUR_KEYS if k in body}
                    if unknown := sorted(set(body) - set(_BEHAVIOUR_KEYS) - {"rate", "seed", "kinds"}):
                        raise ValueError(f"unknown fault settings {unknown}")
                    fault_settings = not behaviours or bool({"rate", "seed", "kinds"} & set(body))
                    rate = body.get("rate", self.faults()["rate"])
                    if fault_settings:  # validated before any behaviour changes
                        check_fault_rate(rate)
                        normalize_fault_kinds(body.get("kinds"))
                    if behaviours:
                        self.set_behaviours(**behaviours)
                    if fault_settings:
                        self.set_faults(rate, seed=body.get("seed"), kinds=body.get("kinds"))
                    return ApiResponse.json(200, self.faults())
                case ("GET", "/clock"):
                    return ApiResponse.json(200, self.clock.as_dict())
                case ("POST", "/clock"):
                    body = parse_json_object(request.body)
                    if unknown := sorted(set(body) - {"now_ms", "advance_s", "real_time"}):
                        raise ValueError(f"unknown clock settings {unknown}; use now_ms, advance_s or real_time")
                    if body.get("real_time"):
                        self.clock.reset()
                    if "now_ms" in body:
                        self.clock.set_ms(body["now_ms"])
                    if "advance_s" in body:
                        self.clock.advance(body["advance_s"])
                    return ApiResponse.json(200, self.clock.as_dict())
                case ("GET", "/health"):
                    return ApiResponse.json(200, {"status": "ok"})
        except (BodyError, ValueError, TypeError) as exc:
            return ApiResponse.json(400, {"error": str(exc)})
        return ApiResponse.json(404, {"error": f"No sandbox route for {request.method} {request.path}"})


_BEHAVIOUR_KEYS = ("rate_limit", "retry_after_override", "already_cancelled", "error_200_actions")


class _BadBody(Exception):
    """The request body cannot be read (bad Content-Length or chunking, or too large)."""


class _HTTPServer(ThreadingHTTPServer):
    """Threading HTTP server that tracks its connections so :meth:`stop` can close them."""

    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup ``HTTPServer.server_bind`` does."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open client connection (idle keep-alive ones included)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that went away; report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler delegating to :class:`SandboxServer`."""

    protocol_version = "HTTP/1.1"
    server_version = "RewardsSandbox/1.0"
    sys_version = ""
    timeout = 60.0
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr line (see ``log_requests``)."""

    def _dispatch(self) -> None:
        """Read the request, answer it (or drop it) and record it."""
        started = time.perf_counter()
        sandbox = self.server.sandbox
        split = urlsplit(self.path)
        try:
            body = self._read_body()
        except _BadBody as exc:
            self.close_connection = True
            if split.path.startswith(hpgames_api.PREFIX):
                error_body: dict[str, Any] = HpgError(400, HpgErrorCode.VALIDATION, str(exc)).body()
            else:
                error_body = ThanxError(400, THANX_BAD_REQUEST, str(exc)).body()
            self._write(ApiResponse.json(400, error_body))
            return
        request = ApiRequest(
            method=self.command,
            path=split.path,
            segments=tuple(unquote(segment) for segment in split.path.split("/")[1:]),
            query=parse_qs(split.query, keep_blank_values=True),
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
        )
        if split.path == SANDBOX_PREFIX or split.path.startswith(SANDBOX_PREFIX + "/"):
            self._write(sandbox.handle_admin(request))
            return
        response, fault = sandbox.handle_vendor(request)
        # Recorded before the answer is written, so a client that got its answer finds it logged.
        sandbox.record(request, response.status, fault, started)
        if fault == "drop":
            self.close_connection = True  # the change is applied; no response is written
        else:
            self._write(response)

    def _read_body(self) -> bytes:
        """Read a Content-Length or chunked body."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise _BadBody(f"Invalid Content-Length {length!r}") from None
        if not 0 <= size <= MAX_BODY_BYTES:
            raise _BadBody(f"Content-Length must be 0..{MAX_BODY_BYTES}")
        return self.rfile.read(size)

    def _read_chunked(self) -> bytes:
        """Read a ``Transfer-Encoding: chunked`` body (trailers are discarded)."""
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadBody("Invalid chunk size") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadBody("Body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)

    def _write(self, response: ApiResponse) -> None:
        """Write status line, headers and body (chunked when the response streams)."""
        if response.chunks is not None:
            self._write_chunked(response)
            return
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers_with_body(response.body)

    def _write_chunked(self, response: ApiResponse) -> None:
        """Write a ``Transfer-Encoding: chunked`` response, one chunk per produced piece."""
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        for chunk in response.chunks or ():
            if chunk:
                self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def end_headers_with_body(self, body: bytes) -> None:
        """Like ``end_headers`` but sends headers and body in one write (no Nagle/delayed-ACK stall)."""
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()
