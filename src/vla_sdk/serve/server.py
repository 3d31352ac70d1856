"""A policy behind openpi's websocket protocol, so a robot wired for openpi's ``openpi-client`` runs it unchanged.

The conversation, per connection (openpi's ``WebsocketPolicyServer`` holds the same one)::

    server -> client   metadata: {"server": "vla-sdk", "robot", "cameras", "image_size", "horizon", ...}
    client -> server   observation: {"images": {camera: uint8 [h, w, 3] (or [3, h, w])}, "state": [A], "prompt": str}
    server -> client   {"actions": float [H, A], "server_timing": {"infer_ms", "prev_total_ms"}}
    ...                (one reply per request, in order)

Every message is msgpack in a binary frame (:mod:`vla_sdk.serve.wire`). When a request cannot be served, the server
sends one text frame that says why (a bad observation names its field; a bug sends the traceback) and closes the
connection with an error code: 1007 (bad data), 1008 (rate limit, idle), 1009 (a message over the size limit), 1003
(a text frame where msgpack was expected), 1011 (an error inside the server); other connections are untouched.
``GET /healthz`` answers 200 ``OK`` (plain HTTP).

Inference runs in one worker thread (calls are serialized; each connection has its own noise stream, a function of
its seed, 0 until it sends a reset, and its own call index: a client gets what a local ``Policy`` would give it
after ``reset(seed)``, whatever other clients do), so a slow inference never stalls the event loop: handshakes,
health checks and other clients' messages are read meanwhile. Every queue is bounded: a connection has at most one
inference queued or running (it reads its next message only after its reply), so the worker's queue holds at most
one call per connection, served in arrival order; websockets buffers at most ``MAX_QUEUE`` received frames per
connection before it stops reading the socket (TCP pushes back on the client); large messages are decoded in a
helper thread, at most ``DECODE_SLOTS`` at a time. Memory is thereby bounded by about ``max_connections x (MAX_QUEUE
+ 2) x max_message_bytes`` in the worst case.

Connections that hold a slot without using it are closed: a TCP connection that does not finish its websocket
handshake within ``handshake_timeout`` is dropped (there is no websocket yet to carry an error frame); an open
connection that sends no complete message for ``idle_timeout`` seconds (one that never sends, or dribbles a frame
byte by byte) gets an ``idle`` error frame and close code 1008; a peer that stops answering websocket pings is closed
by websockets' keepalive (1011). Beyond ``max_connections`` open connections a new one is refused before the
handshake with HTTP 503 and a body that says so (the health check is always answered).

The server binds 127.0.0.1 unless told otherwise, and refuses any other address without a token; clients then send
``Authorization: Api-Key TOKEN`` (what ``openpi-client``'s ``api_key`` sends) or ``Authorization: Bearer TOKEN``.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import ipaddress
import logging
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import CloseCode

from vla_sdk import __version__
from vla_sdk.errors import InputError, UsageError
from vla_sdk.serve.wire import WireError, pack, unpack

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
MAX_QUEUE = 2  # received frames websockets buffers per connection before it stops reading that socket
DECODE_SLOTS = 2  # messages over DECODE_INLINE_BYTES decoded at once (in helper threads, off the event loop)
DECODE_INLINE_BYTES = 256 * 2**10  # smaller messages are decoded on the event loop (cheaper than a thread hop)
MAX_PROMPT_CHARS = 2**16
RESET_KEY = "__reset__"  # {"__reset__": seed}: policy.reset(seed), answered {"reset": seed} (vla-sdk's client sends it)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_host(host: str, token: str | None) -> None:
    """Refuse to bind an address other machines can reach without a token (:class:`UsageError`)."""
    if not is_loopback(host) and not token:
        raise UsageError(
            f"--host {host} accepts connections from other machines: give --token (clients send it as "
            "`Authorization: Api-Key TOKEN`, openpi-client's api_key), or bind 127.0.0.1"
        )


def _describe(value) -> str:
    """What a client sent, for an error message: ``int64[3]``, ``a list of 3``, ``a str``, ``nothing``."""
    if value is None:
        return "nothing"
    if isinstance(value, np.ndarray):
        return f"{value.dtype}[{', '.join(map(str, value.shape))}]"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def policy_observation(
    request, cameras: tuple[str, ...], state_dim: int | None = None, default_prompt: str | None = None
) -> dict:
    """An openpi request {"images", "state", "prompt"} -> the SDK's observation {"images", "state", "instruction"}.

    Only the policy's cameras are passed on (extra ones are ignored); channel-first images [3, h, w], as openpi's
    ALOHA clients send them, are transposed. Raises :class:`InputError` naming the field that does not fit, what it
    expected and what it got, e.g. ``field 'state': expected float[14], got int64[3]``."""
    if not isinstance(request, dict):
        raise InputError(
            f"the request must be a map {{images, state, prompt}}, got {_describe(request)}"
            + (" (the array entry itself, not a map holding it)" if isinstance(request, np.ndarray) else "")
        )
    images = request.get("images")
    if not isinstance(images, dict):
        raise InputError(
            f"field 'images': expected a map camera -> uint8[h, w, 3] for {list(cameras)}, got {_describe(images)}"
        )
    out = {}
    for c in cameras:
        if c not in images:
            raise InputError(
                f"field 'images': no camera {c!r} (the policy reads {list(cameras)}; got {sorted(map(str, images))})"
            )
        img = images[c]
        if (
            not isinstance(img, np.ndarray)
            or img.dtype != np.uint8
            or img.ndim != 3
            or 3 not in (img.shape[0], img.shape[-1])
        ):
            raise InputError(f"field 'images[{c!r}]': expected uint8[h, w, 3] (or [3, h, w]), got {_describe(img)}")
        if img.shape[-1] != 3:  # channel-first
            img = np.ascontiguousarray(img.transpose(1, 2, 0))
        if min(img.shape[:2]) < 1:
            raise InputError(f"field 'images[{c!r}]': empty image {_describe(img)}")
        out[c] = img
    want = f"float[{state_dim if state_dim is not None else 'A'}]"
    if "state" not in request:
        raise InputError(f"field 'state': missing (the robot's joint positions, {want})")
    raw = request["state"]
    try:
        state = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"field 'state': expected {want}, got {_describe(raw)}") from e
    if (
        (isinstance(raw, np.ndarray) and raw.dtype.kind not in "iuf")
        or state.ndim != 1
        or (state_dim is not None and state.shape[0] != state_dim)
    ):
        raise InputError(f"field 'state': expected {want}, got {_describe(raw)}")
    if not np.all(np.isfinite(state)):
        raise InputError("field 'state': holds NaN or inf")
    prompt = request.get("prompt", request.get("instruction", default_prompt))
    if prompt is None:
        raise InputError("field 'prompt': missing (the task instruction; or start the server with --prompt)")
    if not isinstance(prompt, str):
        raise InputError(f"field 'prompt': expected a string, got {_describe(prompt)}")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"field 'prompt': {len(prompt)} characters (at most {MAX_PROMPT_CHARS})")
    return {"images": out, "state": state, "instruction": prompt}


def policy_metadata(policy, default_prompt: str | None = None) -> dict:
    """What the server sends first: enough for a client to build observations without reading the checkpoint."""
    meta = getattr(policy, "meta", None) or {}
    names = list(meta.get("action_names") or [])
    return {
        "server": "vla-sdk",
        "version": __version__,
        "robot": policy.robot,
        "cameras": list(policy.cameras),
        "image_size": list(policy.image_size),
        "horizon": int(policy.horizon),
        "action_dim": len(names) or None,
        "action_names": names,
        "execute": policy.execute,
        "prompt": default_prompt,
    }


class TokenBucket:
    """Token bucket: ``rate`` requests per second on average, bursts of up to ``burst`` (starts full). ``clock``
    (seconds, monotonic) is an argument so the arithmetic can be tested without wall-clock timing."""

    def __init__(self, rate: float, burst: float, clock=time.monotonic):
        self.rate, self.burst, self.level, self.clock = rate, burst, burst, clock
        self.t = clock()

    def take(self) -> bool:
        now = self.clock()
        self.level = min(self.burst, self.level + (now - self.t) * self.rate)
        self.t = now
        if self.level < 1:
            return False
        self.level -= 1
        return True


class PolicyServer:
    """Serves ``policy`` (anything with the :class:`vla_sdk.protocols.Policy` protocol) over websockets.

    ``port=0`` picks a free port (read :attr:`port` once started). Limits (module docstring: what each answers):
    ``max_message_bytes`` bounds one incoming message (a larger one closes the connection with 1009); ``rate_limit``
    is requests per second per connection (bursts up to as many; 0: no limit); ``max_connections`` open websocket
    connections at once (0: no cap); ``handshake_timeout`` seconds to finish the opening handshake; ``idle_timeout``
    seconds an open connection may go without sending a complete message (0: forever)."""

    def __init__(
        self,
        policy,
        host: str = "127.0.0.1",
        port: int = 8000,
        token: str | None = None,
        default_prompt: str | None = None,
        max_message_bytes: int = 16 * 2**20,
        rate_limit: float = 100.0,
        max_connections: int = 128,
        handshake_timeout: float = 10.0,
        idle_timeout: float = 300.0,
    ):
        check_host(host, token)
        if max_message_bytes < 1024:
            raise UsageError(f"max_message_bytes must be >= 1024, got {max_message_bytes}")
        if rate_limit < 0:
            raise UsageError(f"rate_limit must be >= 0, got {rate_limit}")
        if max_connections < 0:
            raise UsageError(f"max_connections must be >= 0 (0: no cap), got {max_connections}")
        if handshake_timeout <= 0:
            raise UsageError(f"handshake_timeout must be > 0 seconds, got {handshake_timeout}")
        if idle_timeout < 0:
            raise UsageError(f"idle_timeout must be >= 0 seconds (0: none), got {idle_timeout}")
        self.policy, self.host, self.port, self.token = policy, host, port, token
        self.default_prompt, self.max_message_bytes, self.rate_limit = default_prompt, max_message_bytes, rate_limit
        self.max_connections, self.handshake_timeout, self.idle_timeout = (
            max_connections,
            handshake_timeout,
            idle_timeout,
        )
        self.metadata = policy_metadata(policy, default_prompt)
        meta = getattr(policy, "meta", None) or {}
        self._state_dim = len(meta.get("action_names") or []) or None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vla-serve-infer")
        self._decode_pool = ThreadPoolExecutor(max_workers=DECODE_SLOTS, thread_name_prefix="vla-serve-decode")
        self._decode_slots: asyncio.Semaphore | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._open: set[ServerConnection] = set()  # connections past the handshake, until their handler returns
        self.requests = 0  # inferences served (all connections)
        self.refused = 0  # connections refused at the cap

    # -- HTTP side: health check, authorization and the connection cap, before the websocket handshake --

    def _authorized(self, header: str | None) -> bool:
        if not self.token:
            return True
        scheme, _, value = (header or "").strip().partition(" ")
        if scheme.lower() not in ("api-key", "bearer"):
            return False
        return hmac.compare_digest(value.strip().encode(), self.token.encode())

    def _process_request(self, connection: ServerConnection, request):
        if request.path.split("?")[0] == HEALTH_PATH:
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if not self._authorized(request.headers.get("Authorization")):
            return connection.respond(
                http.HTTPStatus.UNAUTHORIZED,
                "vla serve: missing or wrong token (send `Authorization: Api-Key TOKEN`)\n",
            )
        if self.max_connections and len(self._open) >= self.max_connections:
            self.refused += 1
            log.warning("refused a connection: %d open (--max-connections %d)", len(self._open), self.max_connections)
            return connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                f"vla serve: too many connections ({len(self._open)} open, the server's --max-connections is "
                f"{self.max_connections}); try again later\n",
            )
        return None

    # -- one connection --

    async def _fail(self, ws: ServerConnection, code: CloseCode, message: str) -> None:
        try:
            await ws.send(message)  # a text frame: openpi-client raises it as "Error in inference server: ..."
            reason = message.strip().splitlines()[-1].encode()[:120].decode(errors="ignore")  # a close reason: <= 123 B
            closing = asyncio.create_task(ws.close(code, reason))
            try:  # read on, discarding: a flooding client's close reply sits behind the messages it sent first
                while not closing.done():
                    await ws.recv()
            except websockets.ConnectionClosed:
                pass
            await closing
        except websockets.ConnectionClosed:
            pass

    def _infer(self, obs: dict, stream: list[int]) -> tuple[np.ndarray, float]:
        """One inference in the worker thread, on the connection's own noise stream ``[seed, calls]``."""
        t = time.monotonic()
        self.policy.reset(stream[0], calls=stream[1])  # the worker runs one call at a time: no other stream meanwhile
        actions = np.asarray(self.policy(obs))
        stream[1] += 1
        return actions, (time.monotonic() - t) * 1000

    def _decode(self, message: bytes):
        """bytes -> (request, observation or None for a reset); raises WireError / InputError."""
        request = unpack(message)
        if isinstance(request, dict) and RESET_KEY in request:
            seed = request[RESET_KEY]
            if not isinstance(seed, int) or isinstance(seed, bool):
                raise InputError(f"field {RESET_KEY!r}: expected an int seed, got {_describe(seed)}")
            return request, None
        return request, policy_observation(request, self.policy.cameras, self._state_dim, self.default_prompt)

    async def _decode_off_loop(self, message: bytes):
        if len(message) <= DECODE_INLINE_BYTES:
            return self._decode(message)
        async with self._decode_slots:  # a few large decodes at once: bounded memory, the loop keeps running
            return await asyncio.get_running_loop().run_in_executor(self._decode_pool, self._decode, message)

    async def _handler(self, ws: ServerConnection) -> None:
        peer = ws.remote_address
        log.info("connection from %s", peer)
        self._open.add(ws)
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(self.rate_limit, max(1.0, self.rate_limit)) if self.rate_limit else None
        prev_total_ms = None
        stream = [0, 0]  # this connection's noise: (seed, call index), as a local Policy after reset(seed)
        try:
            await ws.send(pack(self.metadata))
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout or None):
                        message = await ws.recv()  # cancelling recv() loses nothing (websockets' contract)
                except TimeoutError:
                    log.info("closing %s: idle for %g s", peer, self.idle_timeout)
                    return await self._fail(
                        ws,
                        CloseCode.POLICY_VIOLATION,
                        f"vla serve: idle: no complete message for {self.idle_timeout:g} s (the server's "
                        "--idle-timeout); reconnect to go on",
                    )
                start = time.monotonic()
                if isinstance(message, str):
                    return await self._fail(
                        ws, CloseCode.UNSUPPORTED_DATA, "vla serve: expected a binary frame holding msgpack, got text"
                    )
                if bucket is not None and not bucket.take():
                    return await self._fail(
                        ws,
                        CloseCode.POLICY_VIOLATION,
                        f"vla serve: rate limit: more than {self.rate_limit:g} requests per second on this connection",
                    )
                try:
                    request, obs = await self._decode_off_loop(message)
                    if obs is None:
                        seed = request[RESET_KEY]
                        stream[:] = [seed, 0]
                        await ws.send(pack({"reset": seed}))
                        continue
                    actions, infer_ms = await loop.run_in_executor(self._pool, self._infer, obs, stream)
                except (WireError, InputError) as e:  # the client's message does not fit: say which field
                    log.info("bad request from %s: %s", peer, e)
                    return await self._fail(ws, CloseCode.INVALID_DATA, f"vla serve: bad observation: {e}")
                except Exception:  # noqa: BLE001 - a bug: the client gets the traceback, the server keeps serving
                    log.exception("inference failed for %s", peer)
                    return await self._fail(ws, CloseCode.INTERNAL_ERROR, traceback.format_exc())
                self.requests += 1
                timing = {"infer_ms": infer_ms}
                if prev_total_ms is not None:
                    timing["prev_total_ms"] = prev_total_ms
                await ws.send(pack({"actions": actions, "server_timing": timing}))
                prev_total_ms = (time.monotonic() - start) * 1000
        except websockets.ConnectionClosed:
            pass
        finally:
            self._open.discard(ws)
            log.info("connection from %s closed", peer)

    # -- running --

    async def run(self, ready=None) -> None:
        """Serve until :meth:`stop`; ``ready(port)`` is called once listening."""
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._decode_slots = asyncio.Semaphore(DECODE_SLOTS)
        async with serve(
            self._handler,
            self.host,
            self.port,
            compression=None,
            max_size=self.max_message_bytes,
            close_timeout=2,  # a flooding client's close reply can sit behind its unread messages: do not wait 10 s
            open_timeout=self.handshake_timeout,
            max_queue=MAX_QUEUE,
            process_request=self._process_request,
            server_header=f"vla-sdk/{__version__}",
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            if ready is not None:
                ready(self.port)
            await self._stop.wait()

    def serve_forever(self, ready=None) -> None:
        try:
            asyncio.run(self.run(ready))
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._decode_pool.shutdown(wait=False, cancel_futures=True)

    def start(self, timeout: float = 30.0) -> PolicyServer:
        """Serve from a background thread (tests, notebooks); returns once listening. Stop with :meth:`stop`."""
        up, errors = threading.Event(), []

        def main():
            try:
                self.serve_forever(lambda port: up.set())
            except BaseException as e:  # noqa: BLE001 - reported to the caller of start()
                errors.append(e)
                up.set()

        self._thread = threading.Thread(target=main, name="vla-serve", daemon=True)
        self._thread.start()
        if not up.wait(timeout):
            raise RuntimeError(f"vla serve did not start listening within {timeout} s")
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
