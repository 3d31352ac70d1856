"""A policy on another machine: :class:`PolicyClient` speaks to `vla serve` (or any openpi policy server) and
implements the :class:`vla_sdk.protocols.Policy` protocol, so a :class:`vla_sdk.runner.PolicyRunner` drives it as it
drives a local policy. numpy + websockets + msgpack only: no jax, no flax (a robot computer needs nothing else).

    with PolicyClient("ws://gpu-box:8000", token="...") as policy:
        actions = policy({"images": {"cam_high": img}, "state": q, "instruction": "pick up the cube"})  # [H, A]
"""

from __future__ import annotations

import threading

import numpy as np
import websockets
from websockets.sync.client import connect

from vla_sdk.errors import InputError, RuntimeFailure
from vla_sdk.serve.wire import WireError, pack, unpack


class ServerError(RuntimeFailure):
    """The server refused a request or failed on it (its text frame, e.g. a bad observation's field, is the message)."""


class PolicyClient:
    """``client(obs) -> actions [H, A]`` over one websocket connection; the properties come from the server's
    metadata. ``reset(seed)`` asks a vla-sdk server to reseed its policy's sampling noise (shared by all of that
    server's clients); an openpi server does not know that message, so leave it out there (``reset_on_server``)."""

    def __init__(
        self,
        url: str = "ws://127.0.0.1:8000",
        token: str | None = None,
        timeout: float = 30.0,
        max_message_bytes: int = 64 * 2**20,
        reset_on_server: bool = True,
    ):
        if not url.startswith(("ws://", "wss://")):
            url = f"ws://{url}"
        self.url, self.timeout, self.reset_on_server = url, timeout, reset_on_server
        self._headers = {"Authorization": f"Api-Key {token}"} if token else None
        self._max_message_bytes = max_message_bytes
        self._lock = threading.Lock()
        self.reconnects = 0  # times the server closed this client as idle and it reconnected
        self._connect()
        self.last_timing: dict = {}

    def _connect(self) -> None:
        url = self.url
        try:
            ws = connect(
                url,
                compression=None,
                max_size=self._max_message_bytes,
                additional_headers=self._headers,
                open_timeout=self.timeout,
            )
            # entered by hand (closed by close() / __exit__): websockets >= 17 warns on a connection never entered
            self._ws = ws.__enter__()
        except websockets.InvalidStatus as e:
            status = e.response.status_code
            body = e.response.body.decode(errors="replace").strip()
            raise ServerError(f"{url} refused the connection: HTTP {status} {body}") from e
        except (OSError, websockets.InvalidHandshake, TimeoutError) as e:
            raise RuntimeFailure(f"cannot connect to {url}: {type(e).__name__}: {e}") from e
        self.metadata: dict = self._recv()
        if not isinstance(self.metadata, dict):
            raise ServerError(f"{url} sent no metadata map first (got {type(self.metadata).__name__})")

    def _closed_as_idle(self) -> bool:
        """Whether a vla-sdk server closed this connection between requests for being idle (``--idle-timeout``):
        nothing was lost, so the next request reconnects instead of failing."""
        rcvd = self._ws.protocol.close_rcvd  # the server's close frame, once it has arrived
        return rcvd is not None and rcvd.code == 1008 and "idle" in rcvd.reason

    def _reconnect(self) -> None:
        self._ws.close()
        self._connect()
        self.reconnects += 1

    def _recv(self):
        try:
            data = self._ws.recv(timeout=self.timeout)
        except websockets.ConnectionClosed as e:
            raise ServerError(f"{self.url} closed the connection ({e})") from e
        except TimeoutError as e:
            raise RuntimeFailure(f"{self.url} sent nothing for {self.timeout} s") from e
        if isinstance(data, str):
            raise ServerError(f"{self.url}: {data.strip()}")
        try:
            return unpack(data)
        except WireError as e:
            raise ServerError(f"{self.url} sent a message that is not msgpack: {e}") from e

    def _request(self, message: dict):
        data = pack(message)
        with self._lock:
            for attempt in (0, 1):
                if self._closed_as_idle():  # the server closes idle connections without reading on: nothing lost
                    self._reconnect()
                try:
                    self._ws.send(data)
                    return self._recv()
                except (websockets.ConnectionClosed, ServerError) as e:
                    if attempt == 0 and (self._closed_as_idle() or "vla serve: idle:" in str(e)):
                        self._reconnect()  # the request crossed the server's idle close (unread): send it again
                        continue
                    if isinstance(e, ServerError):
                        raise
                    raise ServerError(f"{self.url} closed the connection ({e})") from e

    # -- the Policy protocol --

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.metadata.get("cameras") or ())

    @property
    def image_size(self) -> tuple[int, int]:
        h, w = self.metadata.get("image_size") or (0, 0)
        return int(h), int(w)

    @property
    def horizon(self) -> int:
        return int(self.metadata.get("horizon") or 0)

    @property
    def robot(self) -> str | None:
        return self.metadata.get("robot")

    @property
    def execute(self) -> int | None:
        return self.metadata.get("execute")

    def reset(self, seed: int) -> None:
        if self.reset_on_server:
            reply = self._request({"__reset__": int(seed)})
            if not isinstance(reply, dict) or reply.get("reset") != int(seed):
                raise ServerError(
                    f"{self.url} did not acknowledge reset({seed}) (an openpi server? reset_on_server=False)"
                )

    def infer(self, request: dict) -> dict:
        """One raw openpi request ({"images", "state", "prompt", ...}) -> the server's reply dict."""
        reply = self._request(request)
        if not isinstance(reply, dict) or "actions" not in reply:
            raise ServerError(f"{self.url} replied without actions: {type(reply).__name__}")
        return reply

    def __call__(self, obs: dict) -> np.ndarray:
        try:
            request = {"images": dict(obs["images"]), "state": np.asarray(obs["state"]), "prompt": obs["instruction"]}
        except KeyError as e:
            raise InputError(f"observation: no {e.args[0]!r} (expected images, state, instruction)") from e
        reply = self.infer(request)
        self.last_timing = reply.get("server_timing") or {}
        return np.asarray(reply["actions"])

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
