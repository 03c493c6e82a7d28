// A real Yjs client (yjs + y-websocket's WebsocketProvider from npm), driven over stdio by
// tests/interop/test_interop.py.
//
//   node yclient.mjs <serverUrl> <room>        e.g. node yclient.mjs ws://127.0.0.1:8000/ws a/b
//
// Protocol: one JSON object per line each way. Every command line is {"id": n, "cmd": "...", ...}
// and gets exactly one reply line {"id": n, "ok": true, ...} or {"id": n, "ok": false, "error"}.
// Before reading commands the script prints {"event": "ready", "clientID": n}.
//
// Commands
//   report                       -> {report}
//   edit {ops, yield}            apply ops (see applyOp); with yield=true each op is its own
//                                transaction and the event loop turns between ops, so incoming
//                                updates interleave with outgoing ones; an op with an `after`
//                                predicate (as for wait) is applied once it holds -> {report}
//   awareness {field, value}     awareness.setLocalStateField(field, value)
//   awareness {state}            awareness.setLocalState(state)   (state may be null)
//   awarenessOnSync {field, value}   on the next 'sync' event (true), in the same tick:
//                                awareness.setLocalStateField(field, value) (what an app does
//                                when it shows the cursor again after a reconnect)
//   wait {predicate, timeoutMs}  resolve when the JS function source `predicate` returns true
//                                for the report; re-checked on every document update, awareness
//                                change, status and sync event (no polling) -> {report}
//   destroy                      provider.destroy(): sends the awareness-null frame, then closes
//   exit                         reply, then exit(0)
//
// A report is {clientID, text, map, array, xml (a tree, see xmlTree), xmlLength, xmlString,
// awareness: {clientID: state}, synced, status}.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import readline from 'node:readline'

const [serverUrl, room] = process.argv.slice(2)
if (!serverUrl || !room) {
  process.stderr.write('usage: node yclient.mjs <serverUrl> <room>\n')
  process.exit(2)
}

const send = (obj) => {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`yclient: uncaught ${err && err.stack ? err.stack : err}\n`)
  send({ event: 'fatal', error: String(err && err.stack ? err.stack : err) })
  process.exit(1)
})

const doc = new Y.Doc()
const text = doc.getText('text')
const map = doc.getMap('map')
const array = doc.getArray('array')
const xml = doc.getXmlFragment('xml')

let status = 'connecting'
const provider = new WebsocketProvider(serverUrl, room, doc, {
  WebSocketPolyfill: WebSocket,
  // Every client in these tests is its own process; keep all traffic on the server's socket.
  disableBc: true
})
const awareness = provider.awareness

// XML as a tree, so that attribute order (Yjs sorts them, yrs does not) does not matter.
const xmlTree = (node) => {
  if (node instanceof Y.XmlElement) {
    return { tag: node.nodeName, attrs: node.getAttributes(), children: node.toArray().map(xmlTree) }
  }
  if (node instanceof Y.XmlText) return { text: node.toString() }
  return { other: String(node) }
}

const report = () => ({
  clientID: doc.clientID,
  text: text.toString(),
  map: map.toJSON(),
  array: array.toJSON(),
  xml: xml.toArray().map(xmlTree),
  xmlLength: xml.length,
  xmlString: xml.toString(),
  awareness: Object.fromEntries(
    Array.from(awareness.getStates().entries(), ([id, state]) => [String(id), state])
  ),
  synced: provider.synced,
  status
})

// Waiters re-check their predicate whenever anything observable changes.
const waiters = new Set()
const recheck = () => {
  if (waiters.size === 0) return
  const r = report()
  for (const w of Array.from(waiters)) {
    let done = false
    try {
      done = Boolean(w.predicate(r))
    } catch (err) {
      waiters.delete(w)
      clearTimeout(w.timer)
      w.reject(err)
      continue
    }
    if (done) {
      waiters.delete(w)
      clearTimeout(w.timer)
      w.resolve(r)
    }
  }
}
doc.on('afterTransaction', recheck)
awareness.on('change', recheck)
provider.on('status', (event) => {
  status = event.status
  recheck()
})
provider.on('sync', recheck)

const waitFor = (predicate, timeoutMs) =>
  new Promise((resolve, reject) => {
    const w = { predicate, resolve, reject, timer: null }
    w.timer = setTimeout(() => {
      waiters.delete(w)
      reject(new Error(`timed out after ${timeoutMs} ms; last report: ${JSON.stringify(report())}`))
    }, timeoutMs)
    waiters.add(w)
    recheck()
  })

// eslint-disable-next-line no-new-func
const compile = (source) => new Function(`return (${source})`)()

const turn = () => new Promise((resolve) => setTimeout(resolve, 0))

const applyOp = (op) => {
  switch (op.type) {
    case 'text_insert':
      text.insert(op.index == null ? text.length : op.index, op.value)
      break
    case 'text_delete':
      text.delete(op.index, op.length)
      break
    case 'text_delete_substring': {
      // delete the first occurrence of op.value (JS string indexes: UTF-16 code units)
      const at = text.toString().indexOf(op.value)
      if (at < 0) throw new Error(`text does not contain ${JSON.stringify(op.value)}`)
      text.delete(at, op.value.length)
      break
    }
    case 'map_set':
      map.set(op.key, op.value)
      break
    case 'map_delete':
      map.delete(op.key)
      break
    case 'array_push':
      array.push(op.values)
      break
    case 'array_insert':
      array.insert(op.index, op.values)
      break
    case 'xml_element': {
      const el = new Y.XmlElement(op.name)
      for (const [k, v] of Object.entries(op.attrs || {})) el.setAttribute(k, v)
      if (op.text !== undefined) el.insert(0, [new Y.XmlText(op.text)])
      xml.insert(op.index == null ? xml.length : op.index, [el])
      break
    }
    case 'xml_text':
      xml.insert(op.index == null ? xml.length : op.index, [new Y.XmlText(op.text)])
      break
    case 'noop': // only there to carry an `after` predicate
      break
    default:
      throw new Error(`unknown op type ${op.type}`)
  }
}

const handlers = {
  report: async () => ({ report: report() }),
  edit: async ({ ops, yield: yieldBetween = false }) => {
    if (yieldBetween || ops.some((op) => op.after)) {
      for (const op of ops) {
        // `after`: JS predicate source over the report; wait for it before applying this op
        if (op.after) await waitFor(compile(op.after), op.afterTimeoutMs || 5000)
        applyOp(op)
        await turn()
      }
    } else {
      doc.transact(() => ops.forEach(applyOp))
    }
    return { report: report() }
  },
  awareness: async (msg) => {
    if ('state' in msg) awareness.setLocalState(msg.state)
    else awareness.setLocalStateField(msg.field, msg.value)
    return { report: report() }
  },
  awarenessOnSync: async ({ field, value }) => {
    const onSync = (synced) => {
      if (!synced) return
      provider.off('sync', onSync)
      awareness.setLocalStateField(field, value)
    }
    provider.on('sync', onSync)
    return {}
  },
  wait: async ({ predicate, timeoutMs = 5000 }) => {
    return { report: await waitFor(compile(predicate), timeoutMs) }
  },
  destroy: async () => {
    provider.destroy()
    return {}
  },
  exit: async () => {
    setImmediate(() => process.exit(0))
    return {}
  }
}

// -- subdocuments (tests/interop/test_subdocs.py) --------------------------------------------
// A root map 'subdocs' of Y.Docs (apart from report(): a Y.Doc is no JSON value).
//   subdoc_set {key, opts}       subdocs.set(key, new Y.Doc(opts)): opts as Y.Doc takes them
//                                (guid, meta, autoLoad, shouldLoad, gc)
//   subdoc_delete {key}          subdocs.delete(key)
//   subdocs {keys, timeoutMs}    once every key is in the map (waits as `wait` does)
//                                -> {subdocs: {key: {guid, meta, autoLoad, shouldLoad, gc}}}
const subdocs = doc.getMap('subdocs')
const describeSubdoc = (d) => ({
  guid: d.guid,
  meta: d.meta,
  autoLoad: d.autoLoad,
  shouldLoad: d.shouldLoad,
  gc: d.gc
})
Object.assign(handlers, {
  subdoc_set: async ({ key, opts }) => {
    subdocs.set(key, new Y.Doc(opts))
    return {}
  },
  subdoc_delete: async ({ key }) => {
    subdocs.delete(key)
    return {}
  },
  subdocs: async ({ keys = [], timeoutMs = 5000 }) => {
    await waitFor(() => keys.every((key) => subdocs.has(key)), timeoutMs)
    const described = Array.from(subdocs.entries(), ([key, d]) => [key, describeSubdoc(d)])
    return { subdocs: Object.fromEntries(described) }
  }
})

// -- cursors as y-codemirror.next reads them (tests/interop/test_sdk_live.py) ----------------
//   cursor {clientID}            that client's awareness `cursor` ({anchor, head}: relative
//                                positions as JSON) resolved on 'text' -> {anchor, head} (JS
//                                string indexes; null when absent or not in 'text')
Object.assign(handlers, {
  cursor: async ({ clientID }) => {
    const cursor = awareness.getStates().get(clientID)?.cursor
    const resolve = (json) => {
      if (json == null) return null
      const rel = Y.createRelativePositionFromJSON(json)
      const abs = Y.createAbsolutePositionFromRelativePosition(rel, doc)
      return abs && abs.type === text ? abs.index : null
    }
    return { anchor: resolve(cursor?.anchor), head: resolve(cursor?.head) }
  }
})

const rl = readline.createInterface({ input: process.stdin, terminal: false })
rl.on('line', (line) => {
  if (!line.trim()) return
  let msg
  try {
    msg = JSON.parse(line)
  } catch (err) {
    send({ ok: false, error: `bad JSON: ${err}` })
    return
  }
  const handler = handlers[msg.cmd]
  if (!handler) {
    send({ id: msg.id, ok: false, error: `unknown command ${msg.cmd}` })
    return
  }
  handler(msg).then(
    (result) => send({ id: msg.id, ok: true, ...result }),
    (err) => send({ id: msg.id, ok: false, error: String(err && err.message ? err.message : err) })
  )
})
// The test runner closing our stdin means it is gone: do not linger.
rl.on('close', () => process.exit(0))

send({ event: 'ready', clientID: doc.clientID })
