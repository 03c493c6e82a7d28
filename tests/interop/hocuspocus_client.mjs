// Real @hocuspocus/provider clients, driven over stdio by tests/interop/test_hocuspocus.py.
//
//   node hocuspocus_client.mjs <url>          e.g. node hocuspocus_client.mjs ws://127.0.0.1:8000/hocuspocus
//
// One process holds one HocuspocusProviderWebsocket (one socket) and any number of
// HocuspocusProviders attached to it, one per document name. Protocol as yclient.mjs's: one
// JSON object per line each way; every command {"id", "cmd", ...} gets one reply
// {"id", "ok": true, ...} or {"id", "ok": false, "error"}; first line {"event": "ready"}.
//
// Commands
//   open {name, token, user, sessionAwareness}  a provider for `name` on the shared socket
//   insert {name, value, index}   the Y.Text 'text' of that document
//   stateless {name, payload}     provider.sendStateless(payload)
//   awareness {name, field, value}
//   forceSync {name}              provider.forceSync(): step 1 again, as its interval does
//   close {name}                  provider.destroy(): the Close message for that document
//   disconnect / connect          the socket itself (connect: as after a network drop)
//   report                        -> {report}
//   wait {predicate, timeoutMs}   until the JS function source `predicate` holds for the report;
//                                 re-checked on every event (no polling) -> {report}
//
// A report is {socket: {status, opened}, docs: {name: {text, synced, unsynced, authenticated,
// scope, authFailed: [reasons], stateless: [payloads], closed: [reasons], awareness:
// {clientID: state}, clientID}}}.

import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import * as Y from 'yjs'
import WebSocket from 'ws'
import readline from 'node:readline'

const [url] = process.argv.slice(2)
const send = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

process.on('uncaughtException', (err) => {
  send({ event: 'fatal', error: String(err && err.stack ? err.stack : err) })
  process.exit(1)
})

const socketState = { status: 'connecting', opened: 0 }
// Not autoConnect: the first attach() would connect() again while the constructor's attempt is
// still under way, replacing that socket; we connect once, after the first document is attached.
let connected = false
const socket = new HocuspocusProviderWebsocket({
  url,
  WebSocketPolyfill: WebSocket,
  autoConnect: false,
  // Reconnect fast in tests (the defaults wait 1 s and more).
  delay: 50,
  minDelay: 50,
  maxDelay: 500,
  onStatus: ({ status }) => {
    socketState.status = status
    changed()
  },
  onOpen: () => {
    socketState.opened += 1
    changed()
  },
})

const docs = new Map()

const openDoc = ({ name, token = null, user = null, sessionAwareness = false }) => {
  const doc = new Y.Doc()
  const st = {
    authenticated: false,
    scope: null,
    authFailed: [],
    stateless: [],
    closed: [],
  }
  const provider = new HocuspocusProvider({
    websocketProvider: socket,
    name,
    document: doc,
    token,
    sessionAwareness,
    onAuthenticated: ({ scope }) => {
      st.authenticated = true
      st.scope = scope
      changed()
    },
    onAuthenticationFailed: ({ reason }) => {
      st.authFailed.push(reason)
      changed()
    },
    onStateless: ({ payload }) => {
      st.stateless.push(payload)
      changed()
    },
    onClose: ({ event }) => {
      st.closed.push(event.reason ?? null)
      changed()
    },
    onSynced: changed,
    onUnsyncedChanges: changed,
  })
  doc.on('update', changed)
  provider.awareness.on('change', changed)
  if (user) provider.setAwarenessField('user', user)
  provider.attach()
  docs.set(name, { doc, provider, st })
  if (!connected) {
    connected = true
    socket.connect()
  }
}

const describe = (name) => {
  const { doc, provider, st } = docs.get(name)
  const awareness = {}
  for (const [id, state] of provider.awareness.getStates()) awareness[id] = state
  return {
    ...st,
    text: doc.getText('text').toString(),
    synced: provider.isSynced,
    unsynced: provider.unsyncedChanges,
    awareness,
    clientID: doc.clientID,
  }
}

const report = () => {
  const out = {}
  for (const name of docs.keys()) out[name] = describe(name)
  return { socket: { ...socketState }, docs: out }
}

// Waiters re-check their predicate whenever anything observable changes.
let waiters = []
function changed() {
  if (waiters.length === 0) return
  const r = report()
  waiters = waiters.filter((w) => {
    let done = false
    try {
      done = Boolean(w.predicate(r))
    } catch {
      done = false
    }
    if (done) {
      clearTimeout(w.timer)
      w.resolve(r)
    }
    return !done
  })
}

const waitFor = (predicate, timeoutMs) =>
  new Promise((resolve, reject) => {
    const w = { predicate, resolve, reject, timer: null }
    w.timer = setTimeout(() => {
      waiters = waiters.filter((x) => x !== w)
      reject(new Error(`timed out after ${timeoutMs} ms; report: ${JSON.stringify(report())}`))
    }, timeoutMs)
    waiters.push(w)
    changed()
  })

const get = (name) => {
  const entry = docs.get(name)
  if (!entry) throw new Error(`no document ${name} open`)
  return entry
}

const commands = {
  open: async (args) => {
    openDoc(args)
    return {}
  },
  insert: async ({ name, value, index }) => {
    const text = get(name).doc.getText('text')
    text.insert(index == null ? text.length : index, value)
    return {}
  },
  stateless: async ({ name, payload }) => {
    get(name).provider.sendStateless(payload)
    return {}
  },
  awareness: async ({ name, field, value }) => {
    get(name).provider.setAwarenessField(field, value)
    return {}
  },
  forceSync: async ({ name }) => {
    get(name).provider.forceSync()
    return {}
  },
  close: async ({ name }) => {
    get(name).provider.destroy()
    docs.delete(name)
    return {}
  },
  disconnect: async () => {
    socket.disconnect()
    return {}
  },
  connect: async () => {
    socket.connect()
    return {}
  },
  report: async () => ({ report: report() }),
  wait: async ({ predicate, timeoutMs = 5000 }) => ({
    // biome-ignore lint/security/noGlobalEval: test-only: the predicate comes from the test
    report: await waitFor(eval(predicate), timeoutMs),
  }),
}

send({ event: 'ready' })
const rl = readline.createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  let msg
  try {
    msg = JSON.parse(line)
    const handler = commands[msg.cmd]
    if (!handler) throw new Error(`unknown command ${msg.cmd}`)
    send({ id: msg.id, ok: true, ...(await handler(msg)) })
  } catch (err) {
    send({ id: msg?.id, ok: false, error: String(err && err.message ? err.message : err) })
  }
})
rl.on('close', () => process.exit(0))
