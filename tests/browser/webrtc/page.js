// The page tests/browser/test_webrtc.py opens twice: a Y.Doc shared through y-webrtc, whose
// peers find each other through our /signal; with ?ws=, a y-websocket provider beside it
// (the page that persists what the peers write). Query: signal, room, ws, token.
import { WebrtcProvider } from "y-webrtc";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";

const params = new URLSearchParams(location.search);
const doc = new Y.Doc();
const text = doc.getText("text");
const room = params.get("room");
const webrtc = new WebrtcProvider(room, doc, {
  signaling: [params.get("signal")],
  // Loopback host candidates only: no STUN server to wait for.
  peerOpts: { config: { iceServers: [] } },
});
const state = { peers: [], signalingConnected: false, signalingClosed: 0, wsSynced: false };
webrtc.on("peers", (event) => {
  state.peers = event.webrtcPeers;
});
webrtc.on("status", (event) => {
  state.webrtcConnected = event.connected;
});
for (const conn of webrtc.signalingConns) {
  conn.on("connect", () => {
    state.signalingConnected = true;
  });
  conn.on("disconnect", () => {
    state.signalingConnected = false;
    state.signalingClosed += 1;
  });
}
const ws = params.get("ws");
if (ws) {
  const token = params.get("token");
  const provider = new WebsocketProvider(ws, room, doc, token ? { params: { token } } : {});
  provider.on("sync", (synced) => {
    state.wsSynced = synced;
  });
}
// What the screenshot shows: who this page is, its peers, the shared text.
const view = document.createElement("pre");
document.body.append(view);
const render = () => {
  view.textContent = [
    `${params.get("who")} (${ws ? "y-webrtc + y-websocket" : "y-webrtc only"})`,
    `room: ${room}`,
    `signalling: ${state.signalingConnected ? "connected" : "not connected"}`,
    `WebRTC peers: ${state.peers.length}`,
    "",
    text.toString(),
  ].join("\n");
};
text.observe(render);
setInterval(render, 200);
render();
window.collab = {
  state,
  text: () => text.toString(),
  type: (s) => text.insert(text.length, s),
};
document.body.dataset.ready = "1";
