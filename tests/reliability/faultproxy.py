"""A fault-injecting HTTP proxy for the loopback S3 server (RELIABILITY building block 5).

`FaultProxy(upstream)` listens on an ephemeral 127.0.0.1 port in a background thread (its
own asyncio loop) and forwards each HTTP/1.1 request to `upstream` (moto's server) on a
fresh connection. A seeded RNG picks, per request, whether to inject a fault (`rate`) and
which one:

- `slowdown`: answer `503 <Code>SlowDown</Code>` without forwarding (S3's throttling answer);
- `reset`: reset the connection (RST) after k bytes: either before the request reaches the
  server, or after it was served and k random bytes of the answer were sent;
- `truncate`: send a GET answer with its real `Content-Length` but only part of its body,
  then close the connection (answers without a body are reset instead);
- `delay`: hold the request `delay_s` seconds, then serve it normally;
- `corrupt` (not in the default mix): flip one byte of a request or answer body, keeping
  its length (and drop a GET answer's `x-amz-checksum-*` headers): what a bad NIC or a
  buggy middlebox does in front of a server without checksums; only end-to-end hashing
  sees it;
- `deny` (not in the default mix): answer `403 <Code>AccessDenied</Code>`, an error no
  layer retries, so that the client must report it.

`eligible` limits faults to some requests; `hold` parks matching requests, unanswered,
until `release()` (to kill a client at a known point). Every request is logged as an
`Exchange`. Apart from `corrupt`, no byte the proxy passes on differs from what it got.
Plain HTTP/1.1 only (what s3fs speaks to an `http://` endpoint): one request at a time per
client connection, bodies framed by Content-Length or chunked, `Expect: 100-continue` honoured.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

FAULTS = ("slowdown", "reset", "truncate", "delay")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te"})
ERRORS = {
    "slowdown": ("503 Slow Down", "SlowDown", "Please reduce your request rate."),
    "deny": ("403 Forbidden", "AccessDenied", "Access Denied"),
}


@dataclass(frozen=True)
class Request:
    """One HTTP request as the client sent it (body de-chunked)."""

    method: str
    target: str  # path and query, e.g. /bucket/store/objects/ab/cdef?partNumber=1
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass(frozen=True)
class Exchange:
    """What happened to one request: the fault injected (or None) and the status forwarded."""

    method: str
    target: str
    fault: str | None
    status: int | None  # the upstream status, None when the request never reached it
    delivered: bool  # whether the client received the whole answer

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass
class _Response:
    status_line: bytes
    headers: list[tuple[str, str]]
    body: bytes
    status: int


@dataclass
class FaultProxy:
    """An HTTP proxy on 127.0.0.1 that injects faults into a seeded share of requests."""

    upstream: str
    rate: float = 0.0
    faults: tuple[str, ...] = FAULTS
    seed: int = 0
    delay_s: float = 0.2
    eligible: Callable[[Request], bool] | None = None
    hold: Callable[[Request], bool] | None = None
    log: list[Exchange] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        self._up_host = parts.hostname or "127.0.0.1"
        self._up_port = parts.port or 80
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._release: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._busy = 0
        self._tasks: set[asyncio.Task[None]] = set()  # asyncio keeps only weak references
        self.port = 0

    # --- life cycle ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                self._release = asyncio.Event()
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # pragma: no cover - reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="faultproxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close every connection, stop the loop and join its thread."""
        loop, server = self._loop, self._server
        if loop is None or server is None or self._thread is None:
            return

        async def shutdown() -> None:
            server.close()
            assert self._release is not None
            self._release.set()
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()
            for _ in range(3):  # let closed transports run their connection_lost
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configure(self, **changes: Any) -> None:
        """Change rate, faults, delay_s, eligible or hold (the RNG keeps its sequence)."""
        with self._lock:
            for name, value in changes.items():
                if name not in ("rate", "faults", "delay_s", "eligible", "hold"):
                    raise TypeError(name)
                setattr(self, name, value)

    def release(self) -> None:
        """Let held requests through (and hold no more)."""
        self.hold = None
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    # --- reading the log ----------------------------------------------------------------------

    def injected(self) -> Counter[str]:
        """How many faults of each kind were injected so far."""
        with self._lock:
            return Counter(e.fault for e in self.log if e.fault is not None)

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[Exchange]]:
        """The exchanges completed while the block runs."""
        with self._lock:
            start = len(self.log)
        found: list[Exchange] = []
        try:
            yield found
        finally:
            with self._lock:
                found.extend(self.log[start:])

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no request is in progress (a killed client's requests may still be
        on their way to the server)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._busy == 0:
                    return
            time.sleep(0.02)
        raise TimeoutError("the proxy is still busy")

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.log.append(exchange)

    # --- serving ------------------------------------------------------------------------------

    def _decide(self, request: Request) -> tuple[str | None, float, float]:
        """The fault for this request (or None) and two uniform draws for its parameters."""
        with self._lock:
            rng = self._rng
            roll, kind_roll, a, b = rng.random(), rng.random(), rng.random(), rng.random()
            if not self.faults or roll >= self.rate:
                return None, a, b
            if self.eligible is not None and not self.eligible(request):
                return None, a, b
            return self.faults[int(kind_roll * len(self.faults))], a, b

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # once the client hangs up, nothing else would keep it alive
        try:
            while True:
                request = await _read_request(reader, writer)
                if request is None:
                    break
                with self._lock:
                    self._busy += 1
                try:
                    usable = await self._handle(request, writer)
                finally:
                    with self._lock:
                        self._busy -= 1
                if not usable:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            self._tasks.discard(task)

    async def _handle(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; return whether the client connection stays usable.

        Each exchange is logged *before* the client gets its last byte, so that a client
        that has finished never looks at a log that lacks its requests.
        """
        fault, a, b = self._decide(request)
        hold = self.hold
        if hold is not None and hold(request):
            self.held.set()
            assert self._release is not None
            await self._release.wait()
        method, target = request.method, request.target
        if fault in ERRORS:
            self._record(Exchange(method, target, fault, None, True))
            await _send(writer, _error(fault, method == "HEAD"))
            return True
        if fault == "reset" and a < 0.5:  # before the server sees the request
            self._record(Exchange(method, target, fault, None, False))
            _reset(writer)
            return False
        if fault == "delay":
            await asyncio.sleep(self.delay_s)
        if fault == "corrupt" and method == "PUT" and request.body:
            request = replace(request, body=_flip(request.body, a))
        try:
            response = await self._forward(request)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            self._record(Exchange(method, target, "upstream-down", None, False))
            _reset(writer)  # the server is gone: so is the client's connection
            return False
        if fault == "corrupt" and method == "GET" and response.body:
            # Without its checksum headers, as from a server that does not keep them (or
            # botocore would catch the flip before repro's own hashing does).
            response.body = _flip(response.body, b)
            response.headers = [
                (k, v) for k, v in response.headers if not k.lower().startswith("x-amz-checksum")
            ]
        encoded = _encode(response, method == "HEAD")
        if fault == "truncate" and method == "GET" and response.body:
            cut = len(encoded) - len(response.body) + int(b * len(response.body))
            self._record(Exchange(method, target, fault, response.status, False))
            writer.write(encoded[:cut])
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()  # a clean FIN, short of the promised Content-Length
            return False
        if fault in ("reset", "truncate"):  # after the server has served it
            self._record(Exchange(method, target, "reset", response.status, False))
            writer.write(encoded[: int(b * len(encoded))])
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            _reset(writer)
            return False
        self._record(Exchange(method, target, fault, response.status, True))
        await _send(writer, encoded)
        return True

    async def _forward(self, request: Request) -> _Response:
        reader, writer = await asyncio.open_connection(self._up_host, self._up_port, limit=1 << 20)
        try:
            lines = [f"{request.method} {request.target} HTTP/1.1"]
            lines += [f"{k}: {v}" for k, v in request.headers if k.lower() not in HOP_BY_HOP]
            lines.append("Connection: close")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body)
            await writer.drain()
            status_line = (await reader.readline()).rstrip(b"\r\n")
            if not status_line:
                raise ConnectionResetError("upstream closed without an answer")
            status = int(status_line.split(b" ", 2)[1])
            headers = await _read_headers(reader)
            lookup = {k.lower(): v for k, v in headers}
            if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                body = b""
            elif "chunked" in lookup.get("transfer-encoding", "").lower():
                body = await _read_chunked(reader)
            elif "content-length" in lookup:
                body = await reader.readexactly(int(lookup["content-length"]))
            else:
                body = await reader.read()
            return _Response(status_line, headers, body, status)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# --- HTTP/1.1 framing -------------------------------------------------------------------------


async def _read_headers(reader: asyncio.StreamReader) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            await _read_headers(reader)  # trailers
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Request | None:
    line = await reader.readline()
    if not line.strip():
        return None
    method, target, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers = await _read_headers(reader)
    lookup = {k.lower(): v for k, v in headers}
    if lookup.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
        headers = [(k, v) for k, v in headers if k.lower() != "expect"]
    if "chunked" in lookup.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
        headers = [(k, v) for k, v in headers if k.lower() not in ("content-length",)]
        headers.append(("Content-Length", str(len(body))))
    elif "content-length" in lookup:
        body = await reader.readexactly(int(lookup["content-length"]))
    else:
        body = b""
    return Request(method, target, tuple(headers), body)


def _encode(response: _Response, head_only: bool) -> bytes:
    lines = [response.status_line.decode("latin-1")]
    for key, value in response.headers:
        if key.lower() in HOP_BY_HOP or (key.lower() == "content-length" and not head_only):
            continue
        lines.append(f"{key}: {value}")
    if not head_only and not (100 <= response.status < 200 or response.status in (204, 304)):
        lines.append(f"Content-Length: {len(response.body)}")
    lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (
        b"" if head_only else response.body
    )


def _flip(data: bytes, where: float) -> bytes:
    """`data` with one byte inverted, at relative position `where`."""
    at = int(where * len(data))
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def _error(fault: str, head_only: bool) -> bytes:
    """An S3 error answer: status line, XML body with the error code."""
    status, code, message = ERRORS[fault]
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>faultproxy</RequestId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nx-amz-request-id: faultproxy\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode()
    return head if head_only else head + body


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), not FIN: what a dropped connection looks like."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
