"""The protocols served beside y-websocket's (collab/protocol.py, collab/wire.py: /ws).

- `signaling`: the y-webrtc signalling protocol at /signal (JSON text frames: subscribe,
  unsubscribe, publish, ping), topics scoped by the tokens the API accepts, relayed across
  processes through the cluster bus; `signal_socket`: its two sockets (the fast path's and
  the ASGI route's).
- `hocuspocus`: the protocol of @hocuspocus/provider at /hocuspocus (many documents over one
  socket, each message prefixed by its document's name).
"""
