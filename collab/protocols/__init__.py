"""The wire protocols beside y-websocket's, each on its own route, each over the same rooms.

- `hocuspocus`: the protocol of `@hocuspocus/provider` 4.x at `/hocuspocus` (Tiptap's backend
  protocol): many documents over one socket, every message prefixed by its document's name
  (`hocuspocus_codec`: its messages, pure).
- `signaling`: the y-webrtc signalling protocol at `/signal` (topics, not documents).

The y-websocket protocol itself stays in collab/protocol.py (framing) and collab/wire.py (RFC
6455 for every route).
"""
