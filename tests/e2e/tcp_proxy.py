"""A TCP proxy in front of PostgreSQL that a test can break on purpose.

gunicorn is given ``DATABASE_URL`` pointing at :class:`PostgresProxy` instead of
PostgreSQL, and the test then:

- takes the database away (:meth:`PostgresProxy.down`): every open connection is
  closed, and new ones are reset at once (``"refuse"``: a database that is down) or
  accepted and never answered (``"silent"``: a database host that does not answer, where
  only the client's connect timeout ends the wait); :meth:`PostgresProxy.up` brings it back;
- slows every query down (:attr:`PostgresProxy.delay`), so that concurrent requests
  overlap and every server thread opens a connection of its own;
- freezes one connection at a chosen point of its conversation (:meth:`PostgresProxy.hold`):
  after a message matching ``after`` was sent, the first message matching ``at`` is
  either held back (PostgreSQL never sees it: an open transaction is rolled back when
  the connection goes) or sent while the reply is held back (PostgreSQL acts on it, the
  client never learns). The test then finds the process that owns that connection
  (:func:`process_with_connection`) and kills it: a server killed at an exact point of a
  request, with no timing guesswork.

Messages are read from the client's stream in the PostgreSQL protocol's framing, so the
patterns see whole messages. A simple query (``Q``: psycopg's client-side binding, and
``COMMIT``) carries its SQL text and parameters; the extended protocol (server-side
binding and prepared statements, as the app runs on PostgreSQL) splits a statement into
Parse (the SQL, once per prepared statement), Bind (its parameters), Execute and Sync, so a
Bind is matched as if it were the simple query it stands for: ``Q``, four bytes, the SQL
its statement was parsed from, then its text parameters (see :func:`_bind_as_query`). A
hold on a Bind takes the rest of its batch, up to the Sync, with it: forwarded (PostgreSQL
runs and commits it) or held back (released together). Connections must not be encrypted for
that: give the URL ``sslmode=disable`` (see :meth:`PostgresProxy.database_url`); an
encrypted or unrecognised stream is passed through untouched and matches nothing.

Only 127.0.0.1 is used.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

Outage = Literal["refuse", "silent"]

# The untyped messages a client may send before its StartupMessage (PostgreSQL's codes).
_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_CANCEL_REQUEST = 80877102
_MAX_MESSAGE = 1 << 30
_PG_PORT = 5432


@dataclass(eq=False)
class Hold:
    """One connection to freeze: see :meth:`PostgresProxy.hold`."""

    after: re.Pattern[bytes] | None
    at: re.Pattern[bytes]
    forward: bool
    triggered: threading.Event = field(default_factory=threading.Event)
    # Set once triggered: the client's port on 127.0.0.1 (it identifies the process), and
    # the message held back or sent.
    client_port: int = 0
    message: bytes = b""
    _pipe: _Pipe | None = field(default=None, repr=False)

    def wait(self, timeout: float) -> int:
        """The frozen connection's client port, once triggered within ``timeout`` seconds."""
        if not self.triggered.wait(timeout):
            after = f"{self.after.pattern!r} then " if self.after is not None else ""
            raise AssertionError(f"No connection sent {after}{self.at.pattern!r} within {timeout:g} s.")
        return self.client_port

    def release(self) -> None:
        """Unfreeze the connection: a message held back is sent now, and replies flow again
        (one held back after a forwarded message is lost: release only ``forward=False``)."""
        assert self._pipe is not None and not self.forward, "release() is for a triggered hold with forward=False"
        self._pipe.held = False  # first: the reply must get through
        self._pipe.upstream.sendall(self.message)


class _Framer:
    """Splits a client's byte stream into PostgreSQL protocol messages.

    Before the StartupMessage, messages are untyped (``int32 length`` + body); after it,
    typed (``byte type`` + ``int32 length`` + body). After an SSLRequest or GSSENCRequest
    the stream may be encrypted, so it is passed through as it comes (raw).
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.startup = True
        self.raw = False

    def feed(self, data: bytes) -> list[bytes]:
        if self.raw:
            return [data]
        self.buffer += data
        messages: list[bytes] = []
        while True:
            if self.startup:
                if len(self.buffer) < 8:
                    break
                total = int.from_bytes(self.buffer[:4], "big")
                if total < 8 or total > _MAX_MESSAGE:
                    return self._go_raw(messages)
                if len(self.buffer) < total:
                    break
                code = int.from_bytes(self.buffer[4:8], "big")
                if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                    message, self.buffer = self.buffer[:total], self.buffer[total:]
                    messages.append(message)
                    return self._go_raw(messages)
                if code != _CANCEL_REQUEST:
                    self.startup = False
            else:
                if len(self.buffer) < 5:
                    break
                length = int.from_bytes(self.buffer[1:5], "big")
                if length < 4 or length > _MAX_MESSAGE:
                    return self._go_raw(messages)
                total = 1 + length
                if len(self.buffer) < total:
                    break
            message, self.buffer = self.buffer[:total], self.buffer[total:]
            messages.append(message)
        return messages

    def _go_raw(self, messages: list[bytes]) -> list[bytes]:
        self.raw = True
        if self.buffer:
            messages.append(self.buffer)
            self.buffer = b""
        return messages


class _Pipe:
    """One client connection and the proxy's connection to PostgreSQL for it."""

    def __init__(self, client: socket.socket, upstream: socket.socket, client_port: int) -> None:
        self.client = client
        self.upstream = upstream
        self.client_port = client_port
        # Frozen by a hold: nothing more is forwarded either way.
        self.held = False
        # The rest of an extended-protocol batch whose Bind a hold took, up to its Sync: sent
        # on (the hold forwards) or kept with the held message (released with it).
        self.batch_of: Hold | None = None
        # Prepared statements' SQL by name, from the client's Parse messages.
        self.statements: dict[bytes, bytes] = {}
        self.armed: set[int] = set()  # ids of the holds whose ``after`` this connection sent
        self._closed = False
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sock in (self.client, self.upstream):
            try:
                # Wakes the pump thread blocked in recv() on it; close() alone does not.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class PostgresProxy:
    """``127.0.0.1:<port>`` forwarding to PostgreSQL at ``upstream``; a context manager."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", _PG_PORT)) -> None:
        self.upstream = upstream
        self.accepted = 0  # connections forwarded to PostgreSQL, in all
        self.delay = 0.0  # seconds each client message waits before it is forwarded
        self._outage: Outage | None = None
        self._lock = threading.Lock()
        self._pipes: set[_Pipe] = set()
        self._silent: list[socket.socket] = []
        self._holds: list[Hold] = []
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._threads: list[threading.Thread] = []

    # --- life cycle -----------------------------------------------------------------

    def start(self) -> PostgresProxy:
        thread = threading.Thread(target=self._accept_loop, name="pg-proxy-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop accepting and close every connection; idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._close_all()
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> PostgresProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def database_url(self, name: str) -> str:
        """A ``DATABASE_URL`` for database ``name`` through the proxy, unencrypted so that
        :meth:`hold` can read the messages."""
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}?sslmode=disable&gssencmode=disable"

    # --- faults -----------------------------------------------------------------------

    def down(self, outage: Outage = "refuse") -> None:
        """Take the database away: close every open connection; from now on reset each new
        one at once (``"refuse"``) or accept it and never answer (``"silent"``)."""
        with self._lock:
            self._outage = outage
        self._close_all()

    def up(self) -> None:
        """Forward new connections again (those accepted while silent are closed)."""
        with self._lock:
            self._outage = None
            silent, self._silent = self._silent, []
        for sock in silent:
            sock.close()

    def hold(
        self, *, at: bytes | re.Pattern[bytes], forward: bool, after: bytes | re.Pattern[bytes] | None = None
    ) -> Hold:
        """Freeze the first connection that sends a message matching ``at`` after one
        matching ``after`` (any message, when None): with ``forward`` the ``at`` message reaches PostgreSQL and its
        reply is held back, otherwise the message itself is held back. Nothing more is
        forwarded on that connection either way; it stays open until its client goes.
        Patterns are regular expressions over a whole protocol message; each hold fires once."""
        hold = Hold(after=None if after is None else _pattern(after), at=_pattern(at), forward=forward)
        with self._lock:
            self._holds.append(hold)
        return hold

    def open_connections(self) -> int:
        with self._lock:
            return len(self._pipes)

    # --- internals ----------------------------------------------------------------------

    def _close_all(self) -> None:
        with self._lock:
            pipes, self._pipes = self._pipes, set()
            silent, self._silent = (self._silent, []) if self._stopping.is_set() else ([], self._silent)
        for pipe in pipes:
            pipe.close()
        for sock in silent:
            sock.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                outage = self._outage
                if outage == "silent":
                    self._silent.append(client)
                    continue
            if outage == "refuse":
                # RST rather than FIN: the client's connect fails at once.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pipe = _Pipe(client, upstream, client_port=int(address[1]))
            with self._lock:
                self._pipes.add(pipe)
                self.accepted += 1
            for target, name in ((self._client_to_server, "c2s"), (self._server_to_client, "s2c")):
                thread = threading.Thread(target=target, args=(pipe,), name=f"pg-proxy-{name}", daemon=True)
                thread.start()

    def _client_to_server(self, pipe: _Pipe) -> None:
        framer = _Framer()
        try:
            while True:
                data = pipe.client.recv(65536)
                if not data:
                    break
                for message in framer.feed(data):
                    if pipe.held:
                        batch = pipe.batch_of
                        if batch is not None:
                            if batch.forward:
                                pipe.upstream.sendall(message)
                            else:
                                batch.message += message
                            if message[:1] == b"S":
                                pipe.batch_of = None
                        continue  # frozen: the client's further messages go nowhere
                    hold = None if framer.raw else self._hold_for(pipe, _as_seen(pipe, message))
                    if hold is not None:
                        pipe.held = True  # before sending: the reply must not get through
                        hold.message = message
                        if hold.forward:
                            pipe.upstream.sendall(message)
                        if message[:1] == b"B":
                            pipe.batch_of = hold  # its Execute and Sync go with it
                        hold.triggered.set()
                        continue
                    if self.delay and not framer.startup:
                        time.sleep(self.delay)
                    pipe.upstream.sendall(message)
        except OSError:
            pass
        finally:
            self._forget(pipe)

    def _server_to_client(self, pipe: _Pipe) -> None:
        try:
            while True:
                data = pipe.upstream.recv(65536)
                if not data:
                    break
                if not pipe.held:
                    pipe.client.sendall(data)
        except OSError:
            pass
        finally:
            self._forget(pipe)

    def _hold_for(self, pipe: _Pipe, message: bytes) -> Hold | None:
        with self._lock:
            for hold in self._holds:
                if hold.after is None or id(hold) in pipe.armed:
                    if hold.at.search(message):
                        self._holds.remove(hold)
                        hold.client_port = pipe.client_port
                        hold._pipe = pipe
                        return hold
                elif hold.after.search(message):
                    pipe.armed.add(id(hold))
        return None

    def _forget(self, pipe: _Pipe) -> None:
        with self._lock:
            self._pipes.discard(pipe)
        pipe.close()


def _as_seen(pipe: _Pipe, message: bytes) -> bytes:
    """What holds match a client message against: a Bind as the query it runs (and a
    Parse remembered for it), any other message as it is."""
    kind = message[:1]
    if kind == b"P":
        name, _, rest = message[5:].partition(b"\x00")
        pipe.statements[name] = rest.partition(b"\x00")[0]
    elif kind == b"B":
        return _bind_as_query(message, pipe.statements)
    return message


def _bind_as_query(message: bytes, statements: dict[bytes, bytes]) -> bytes:
    """``Q``, the message's length, the SQL of the statement a Bind runs, NUL, then its
    parameters (as sent: text, or binary for numbers and times), each NUL-terminated."""
    body = message[5:]
    _portal, _, body = body.partition(b"\x00")
    statement, _, body = body.partition(b"\x00")
    formats = int.from_bytes(body[:2], "big")
    body = body[2 + 2 * formats :]
    count = int.from_bytes(body[:2], "big")
    body = body[2:]
    params = []
    for _ in range(count):
        size = int.from_bytes(body[:4], "big", signed=True)
        body = body[4:]
        if size < 0:
            params.append(b"NULL")
            continue
        params.append(body[:size])
        body = body[size:]
    return b"Q" + message[1:5] + statements.get(statement, b"") + b"\x00" + b"".join(p + b"\x00" for p in params)


def _pattern(value: bytes | re.Pattern[bytes]) -> re.Pattern[bytes]:
    return value if isinstance(value, re.Pattern) else re.compile(re.escape(value))


# --- which process holds a connection ------------------------------------------------------


def process_with_connection(pids: list[int], *, local_port: int, remote_port: int) -> int | None:
    """The pid among ``pids`` owning the TCP socket 127.0.0.1:``local_port`` →
    127.0.0.1:``remote_port`` (read from ``/proc/net/tcp`` and ``/proc/<pid>/fd``)."""
    inode = _socket_inode(local_port, remote_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) == target:
                    return pid
            except OSError:
                continue
    return None


def _socket_inode(local_port: int, remote_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == local_port and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                return inode
    return None


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition()`` until it is true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout:g} s waiting for {what}.")
        time.sleep(interval)
