"""`vla serve`: a policy behind openpi's websocket + msgpack protocol, and a light client for it.

* :mod:`vla_sdk.serve.wire` — the message format (msgpack, numpy arrays as openpi's ``msgpack_numpy`` encodes them)
* :mod:`vla_sdk.serve.server` — :class:`~vla_sdk.serve.server.PolicyServer` (websockets' asyncio server)
* :mod:`vla_sdk.serve.client` — :class:`~vla_sdk.serve.client.PolicyClient`, the Policy protocol over a socket
  (numpy + websockets + msgpack only: no jax, no flax)

Nothing is imported here, so ``import vla_sdk.serve.client`` stays light.
"""
