"""The wire protocols beside y-websocket's, each on its own route.

- `hocuspocus`: the protocol of `@hocuspocus/provider` 4.x at `/hocuspocus` (Tiptap's backend
  protocol): many documents over one socket, every message prefixed by its document's name
  (`hocuspocus_codec`: its messages, pure), over the same rooms as /ws.
- `signaling`: the y-webrtc signalling protocol at `/signal` (topics, not documents: JSON text
  frames subscribe, unsubscribe, publish, ping), topics scoped by the tokens the API accepts,
  relayed across processes through the cluster bus; `signal_socket`: its two sockets (the fast
  path's and the ASGI route's).

The y-websocket protocol itself stays in collab/protocol.py (framing) and collab/wire.py (RFC
6455 for every route).
"""
