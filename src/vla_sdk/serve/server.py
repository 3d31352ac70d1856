"""A policy behind openpi's websocket protocol, so a robot wired for openpi's ``openpi-client`` runs it unchanged.

The conversation, per connection (openpi's ``WebsocketPolicyServer`` holds the same one)::

    server -> client   metadata: {"server": "vla-sdk", "robot", "cameras", "image_size", "horizon", ...}
    client -> server   observation: {"images": {camera: uint8 [h, w, 3] (or [3, h, w])}, "state": [A], "prompt": str}
    server -> client   {"actions": float [H, A], "server_timing": {"infer_ms", "prev_total_ms"}}
    ...                (one reply per request, in order)

Every message is msgpack in a binary frame (:mod:`vla_sdk.serve.wire`). When a request cannot be served, the server
sends one text frame that says why (a bad observation names its field; a bug sends the traceback) and closes the
connection with an error code: 1007 (bad data), 1008 (rate limit), 1003 (a text frame where msgpack was expected),
1011 (an error inside the server); other connections are untouched. ``GET /healthz`` answers 200 ``OK`` (plain HTTP).

Inference runs in one worker thread (calls are serialized: the policy's sampling noise is a function of its seed and
call index, shared by all clients), so a slow inference never stalls the event loop: handshakes, health checks and
other clients' messages are read meanwhile. The server binds 127.0.0.1 unless told otherwise, and refuses any other
address without a token; clients then send ``Authorization: Api-Key TOKEN`` (what ``openpi-client``'s ``api_key``
sends) or ``Authorization: Bearer TOKEN``.
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


def policy_observation(
    request, cameras: tuple[str, ...], state_dim: int | None = None, default_prompt: str | None = None
) -> dict:
    """An openpi request {"images", "state", "prompt"} -> the SDK's observation {"images", "state", "instruction"}.

    Only the policy's cameras are passed on (extra ones are ignored); channel-first images [3, h, w], as openpi's
    ALOHA clients send them, are transposed. Raises :class:`InputError` naming the field that does not fit."""
    if not isinstance(request, dict):
        raise InputError(f"the request must be a map {{images, state, prompt}}, got a {type(request).__name__}")
    images = request.get("images")
    if not isinstance(images, dict):
        got = "nothing" if images is None else f"a {type(images).__name__}"
        raise InputError(f"images: expected a map camera -> uint8 image [h, w, 3] for {list(cameras)}, got {got}")
    out = {}
    for c in cameras:
        if c not in images:
            raise InputError(
                f"images: no camera {c!r} (the policy reads {list(cameras)}; got {sorted(map(str, images))})"
            )
        img = images[c]
        if (
            not isinstance(img, np.ndarray)
            or img.dtype != np.uint8
            or img.ndim != 3
            or 3 not in (img.shape[0], img.shape[-1])
        ):
            got = f"{img.dtype}{list(img.shape)}" if isinstance(img, np.ndarray) else type(img).__name__
            raise InputError(f"images[{c!r}]: expected a uint8 image [h, w, 3] (or [3, h, w]), got {got}")
        if img.shape[-1] != 3:  # channel-first
            img = np.ascontiguousarray(img.transpose(1, 2, 0))
        if min(img.shape[:2]) < 1:
            raise InputError(f"images[{c!r}]: empty image {list(img.shape)}")
        out[c] = img
    if "state" not in request:
        raise InputError("state: missing (the robot's joint positions, float [A])")
    try:
        state = np.asarray(request["state"], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"state: expected float [A], got {type(request['state']).__name__}") from e
    if state.ndim != 1 or (state_dim is not None and state.shape[0] != state_dim):
        want = f"[{state_dim}]" if state_dim is not None else "[A]"
        raise InputError(f"state: expected float {want}, got shape {list(state.shape)}")
    if not np.all(np.isfinite(state)):
        raise InputError("state: holds NaN or inf")
    prompt = request.get("prompt", request.get("instruction", default_prompt))
    if prompt is None:
        raise InputError("prompt: missing (the task instruction; or start the server with --prompt)")
    if not isinstance(prompt, str):
        raise InputError(f"prompt: expected a string, got {type(prompt).__name__}")
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


class _Bucket:
    """Token bucket: ``rate`` requests per second on average, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst, self.level, self.t = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.t) * self.rate)
        self.t = now
        if self.level < 1:
            return False
        self.level -= 1
        return True


class PolicyServer:
    """Serves ``policy`` (anything with the :class:`vla_sdk.protocols.Policy` protocol) over websockets.

    ``port=0`` picks a free port (read :attr:`port` once started). ``max_message_bytes`` bounds one incoming message
    (a larger one closes the connection with 1009); ``rate_limit`` is requests per second per connection (bursts up
    to as many; 0: no limit)."""

    def __init__(
        self,
        policy,
        host: str = "127.0.0.1",
        port: int = 8000,
        token: str | None = None,
        default_prompt: str | None = None,
        max_message_bytes: int = 16 * 2**20,
        rate_limit: float = 100.0,
    ):
        check_host(host, token)
        if max_message_bytes < 1024:
            raise UsageError(f"max_message_bytes must be >= 1024, got {max_message_bytes}")
        if rate_limit < 0:
            raise UsageError(f"rate_limit must be >= 0, got {rate_limit}")
        self.policy, self.host, self.port, self.token = policy, host, port, token
        self.default_prompt, self.max_message_bytes, self.rate_limit = default_prompt, max_message_bytes, rate_limit
        self.metadata = policy_metadata(policy, default_prompt)
        meta = getattr(policy, "meta", None) or {}
        self._state_dim = len(meta.get("action_names") or []) or None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vla-serve-infer")
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.requests = 0  # inferences served (all connections)

    # -- HTTP side: health check and authorization, before the websocket handshake --

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
        return None

    # -- one connection --

    async def _fail(self, ws: ServerConnection, code: CloseCode, message: str) -> None:
        try:
            await ws.send(message)  # a text frame: openpi-client raises it as "Error in inference server: ..."
            reason = message.strip().splitlines()[-1].encode()[:120].decode(errors="ignore")  # a close reason: <= 123 B
            await ws.close(code, reason)
        except websockets.ConnectionClosed:
            pass

    def _infer(self, obs: dict) -> tuple[np.ndarray, float]:
        t = time.monotonic()
        actions = np.asarray(self.policy(obs))
        return actions, (time.monotonic() - t) * 1000

    async def _handler(self, ws: ServerConnection) -> None:
        peer = ws.remote_address
        log.info("connection from %s", peer)
        loop = asyncio.get_running_loop()
        bucket = _Bucket(self.rate_limit, max(1.0, self.rate_limit)) if self.rate_limit else None
        prev_total_ms = None
        try:
            await ws.send(pack(self.metadata))
            async for message in ws:
                start = time.monotonic()
                if isinstance(message, str):
                    return await self._fail(ws, CloseCode.UNSUPPORTED_DATA, "expected a binary frame holding msgpack")
                if bucket is not None and not bucket.take():
                    return await self._fail(
                        ws, CloseCode.POLICY_VIOLATION, f"rate limit: more than {self.rate_limit:g} requests per second"
                    )
                try:
                    request = unpack(message)
                    if isinstance(request, dict) and RESET_KEY in request:
                        seed = request[RESET_KEY]
                        if not isinstance(seed, int) or isinstance(seed, bool):
                            raise InputError(f"{RESET_KEY}: expected an int seed, got {type(seed).__name__}")
                        await loop.run_in_executor(self._pool, self.policy.reset, seed)
                        await ws.send(pack({"reset": seed}))
                        continue
                    obs = policy_observation(request, self.policy.cameras, self._state_dim, self.default_prompt)
                    actions, infer_ms = await loop.run_in_executor(self._pool, self._infer, obs)
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
            log.info("connection from %s closed", peer)

    # -- running --

    async def run(self, ready=None) -> None:
        """Serve until :meth:`stop`; ``ready(port)`` is called once listening."""
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(
            self._handler,
            self.host,
            self.port,
            compression=None,
            max_size=self.max_message_bytes,
            close_timeout=2,  # a flooding client's close reply can sit behind its unread messages: do not wait 10 s
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
