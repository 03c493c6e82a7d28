// Bundles page.js (y-webrtc + y-websocket + yjs) into one ES module for the test page.
// Usage: node build.mjs <outfile>
import { build } from "esbuild";

await build({
  entryPoints: [new URL("./page.js", import.meta.url).pathname],
  bundle: true,
  format: "esm",
  outfile: process.argv[2],
  logLevel: "warning",
});
