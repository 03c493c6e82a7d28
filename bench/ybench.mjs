#!/usr/bin/env node
// ybench: a load generator that speaks the y-websocket protocol directly, for any server.
//
//   node ybench.mjs <scenario> --url ws://127.0.0.1:PORT --pid SERVER_PID [flags]
//
// Scenarios: connect, fanout, throughput, awareness, bigdoc, join (see USAGE below). Each prints
// one JSON object on stdout (progress goes to stderr).
//
// Clients are raw sockets (`ws`), not Y.Docs: document updates are encoded by hand (a Y.Text
// append is a few bytes, checked byte for byte against Yjs by `node ybench.mjs selftest`), and a
// receiver identifies an update by the (client, clock) at its head, which every server keeps
// whether it forwards the bytes it got or re-encodes them from its own Y.Doc. So the generator
// costs little per message and latency is send -> receive in this one process
// (performance.now(), CLOCK_MONOTONIC): no clock skew.
//
// Server CPU comes from /proc/PID/stat (utime + stime), server memory from /proc/PID/status
// (VmRSS), the generator's own CPU from process.cpuUsage(), and the host's from /proc/stat; what
// the host spent beyond server + generator (+ Redis) is reported as "host background CPU". The
// generator is one Node thread: a run where it used >= 90 % of a core is flagged
// `generator_saturated`.
//
// Several server processes: `--pid A,B` sums the CPU and RSS of the listed processes (two
// servers on two ports), `--tree` adds every descendant of each (a `collab serve --workers N`
// supervisor and its workers); `server_cpu_s_each` gives the per-process split. `--redis-pid`
// measures a Redis server's CPU alongside (reported apart, `redis_cpu_*`). `--reader-url`
// connects the readers of fanout/throughput rooms to another server than the writers (--url).
//
// `--protocol hocuspocus` speaks the protocol of @hocuspocus/provider instead, to
// `--url` + `--path` (default "", the reference @hocuspocus/server answers on any path; ours
// is /hocuspocus): every message is prefixed by its document's name (var string), a socket
// first sends Auth (token "bench") and syncs once the server answers Authenticated, and the
// server's SyncReply (4) counts as Sync, its SyncStatus acks (8) are counted and dropped. One
// socket per client and document, as a HocuspocusProvider with its own socket. The y-websocket
// payloads (updates, awareness) are the same bytes.

import WebSocket from 'ws'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import { monitorEventLoopDelay } from 'node:perf_hooks'

const USAGE = `usage: node ybench.mjs SCENARIO --url ws://127.0.0.1:PORT --pid PID [flags]
  connect    --n 1000 --rooms 200 --hold-ms 3000 --concurrency 100
  fanout     --rooms 100 --clients 10 --rate 100 --duration-ms 15000 --warmup-ms 2000
  throughput --rooms 10 --clients 10 --start-rate 200 --factor 1.5 --step-ms 3000 --warmup-ms 1000
             --max-p99-ms 50 --min-delivered 0.99 --max-steps 20
  awareness  --rooms 5 --clients 20 --hz 10 --duration-ms 10000 --warmup-ms 2000
  bigdoc     --updates 100000 --chars 10 --joins 3 [--healthz http://127.0.0.1:PORT/healthz]
  join       --room NAME --joins 3 --expect-chars N      (cold restore after a restart)
  bigjoin    --updates 20000 --chars 1000 --joiners 100 [--authors 2 --probe-every 100 --window 4]
             (build a document, then that many clients join it at once)
  keystroke  --history-chars 1000000 --chunk 1000 --authors 2 --rate 100 --duration-ms 10000 --warmup-ms 3000
             --idle-ms 2000
             (build a history, then one typist types one character per update in its middle,
              one reader; server CPU per keystroke (and idle beforehand), typist -> reader latency)
  selftest   (checks the hand-encoded updates against Yjs)
common: --prefix NAME (room name prefix), --timeout-ms 60000
  --local-addresses 127.0.0.2,127.0.0.3   source addresses of the client sockets, round robin
  --pid A,B       sum the CPU/RSS of several server processes; --tree: and their descendants
  --redis-pid P   also measure this Redis server's CPU (redis_cpu_s, redis_cpu_us_per_delivery)
  --reader-url U  fanout/throughput: readers connect to U (writers to --url): cross-process
  --protocol hocuspocus [--path /hocuspocus]   the Hocuspocus protocol (see the header)`

// ------------------------------------------------------------------------------------------
// arguments

function parseArgs (argv) {
  const [cmd, ...rest] = argv
  const o = {}
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}\n${USAGE}`)
    const key = a.slice(2).replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase())
    const next = rest[i + 1]
    if (next === undefined || next.startsWith('--')) {
      o[key] = true
    } else {
      o[key] = /^-?[0-9]+(\.[0-9]+)?(e[0-9]+)?$/.test(next) ? Number(next) : next
      i++
    }
  }
  return { cmd, o }
}

const log = (...a) => process.stderr.write(a.join(' ') + '\n')
const now = () => performance.now()
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const round = (x, d = 3) => (x == null || !Number.isFinite(x)) ? x : Math.round(x * 10 ** d) / 10 ** d

// ------------------------------------------------------------------------------------------
// lib0 encoding, the little we need

function pushVarUint (arr, n) {
  while (n > 0x7f) {
    arr.push(0x80 | (n & 0x7f))
    n = Math.floor(n / 128)
  }
  arr.push(n)
}

function pushVarString (arr, s) {
  const b = Buffer.from(s, 'utf8')
  pushVarUint(arr, b.length)
  for (const x of b) arr.push(x)
}

// read cursor for readVarUint: avoids allocating [value, pos] pairs on the hot path
let rpos = 0
function readVarUint (buf) {
  let value = 0
  let mult = 1
  for (;;) {
    const byte = buf[rpos++]
    value += (byte & 0x7f) * mult
    if (byte < 0x80) return value
    mult *= 128
    if (rpos > buf.length) return -1
  }
}

const ROOT = 'codemirror' // the Y.Text the browser editor uses

// A Y.Text append by `client` at `clock`: one Item with ContentString, left origin = the
// writer's previous character (or, for its first insert, none: then the parent is the root
// type by name). Exactly what Yjs encodes for `text.insert(text.length, str)` when this client
// is the text's only writer.
function updateInsert (client, clock, str) {
  return updateAppend(client, clock, str, clock === 0 ? null : [client, clock - 1])
}

// The same append after the text's last character `origin` ([client, clock]) whoever wrote
// it, or into the empty text (origin null).
function updateAppend (client, clock, str, origin) {
  const u = []
  pushVarUint(u, 1) // clients
  pushVarUint(u, 1) // structs of this client
  pushVarUint(u, client)
  pushVarUint(u, clock)
  if (origin === null) {
    u.push(4) // info: ContentString, no origins
    pushVarUint(u, 1) // parent is a root type, by key
    pushVarString(u, ROOT)
  } else {
    u.push(0x84) // info: ContentString | origin
    pushVarUint(u, origin[0])
    pushVarUint(u, origin[1])
  }
  pushVarString(u, str)
  pushVarUint(u, 0) // empty delete set
  return u
}

// How many clocks the structs of an update from one client cover (rpos at the first struct).
// A server may merge back-to-back updates of one client into one (ours does): the receiver
// then counts every write it holds, not only the first. Understands what Writer sends: string
// items (ASCII), GC and Skip; anything else counts as one write.
function structsSpan (data, structs) {
  let span = 0
  for (let i = 0; i < structs; i++) {
    const info = data[rpos++]
    if (info === 0 || info === 10) { span += readVarUint(data); continue } // GC, Skip
    if (info & 0x80) { readVarUint(data); readVarUint(data) } // origin
    if (info & 0x40) { readVarUint(data); readVarUint(data) } // right origin
    if (!(info & 0xC0)) {
      if (readVarUint(data) === 1) rpos += readVarUint(data) // parent: root type by name
      else { readVarUint(data); readVarUint(data) } // parent: an item's ID
      if (info & 0x20) rpos += readVarUint(data) // parent sub (map key)
    }
    if ((info & 0x1f) !== 4) return null // not a string: unknown span
    const n = readVarUint(data) // ASCII: bytes = characters = clocks
    rpos += n
    span += n
  }
  return span
}

function syncMessage (kind, payload) {
  const m = [0, kind]
  pushVarUint(m, payload.length)
  for (const x of payload) m.push(x)
  return Buffer.from(m)
}

const insertMessage = (client, clock, str) => syncMessage(2, updateInsert(client, clock, str))

// A Y.Text insert between two characters, as a cursor in the middle of a document types it:
// one Item with ContentString, left origin = the character before (`origin`, [client, clock]),
// right origin = the character after (`right`). What Yjs encodes for `text.insert(i, str)` when
// 0 < i < text.length (checked by selftest).
function updateInsertBetween (client, clock, str, origin, right) {
  const u = []
  pushVarUint(u, 1) // clients
  pushVarUint(u, 1) // structs of this client
  pushVarUint(u, client)
  pushVarUint(u, clock)
  u.push(0xC4) // info: ContentString | origin | right origin (no parent: the origins name it)
  pushVarUint(u, origin[0])
  pushVarUint(u, origin[1])
  pushVarUint(u, right[0])
  pushVarUint(u, right[1])
  pushVarString(u, str)
  pushVarUint(u, 0) // empty delete set
  return u
}
const STEP1_EMPTY = syncMessage(0, [0]) // sync step 1 with an empty state vector
const STEP2_EMPTY = syncMessage(1, [0, 0]) // sync step 2 with an empty update

function step1For (client, clock) {
  return step1ForAll([[client, clock]])
}

function step1ForAll (entries) { // [[client, clock], ...]: a state vector of several clients
  const sv = []
  pushVarUint(sv, entries.length)
  for (const [client, clock] of entries) {
    pushVarUint(sv, client)
    pushVarUint(sv, clock)
  }
  return syncMessage(0, sv)
}

function awarenessMessage (client, clock, json) {
  const inner = []
  pushVarUint(inner, 1)
  pushVarUint(inner, client)
  pushVarUint(inner, clock)
  pushVarString(inner, json)
  const m = [1]
  pushVarUint(m, inner.length)
  for (const x of inner) m.push(x)
  return Buffer.from(m)
}

// ------------------------------------------------------------------------------------------
// measurement

const CLK_TCK = 100 // getconf CLK_TCK on Linux
const NCPU = os.cpus().length

function procTicks (pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return Number(f[11]) + Number(f[12]) // utime + stime
}

function rssKb (pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /VmRSS:\s+(\d+)/.exec(s)
  return m ? Number(m[1]) : null
}

function ticksOrNull (pid) {
  try { return procTicks(pid) } catch { return null } // the process has exited
}

// The server's processes: the --pid list, and with --tree every descendant of each (the
// workers of a `collab serve --workers N` supervisor), from the ppid field of /proc/*/stat.
function serverPids (o) {
  const pids = [...o.pids]
  if (!o.tree) return pids
  const children = new Map()
  for (const d of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue
    let s
    try { s = fs.readFileSync(`/proc/${d}/stat`, 'utf8') } catch { continue }
    const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1])
    if (!children.has(ppid)) children.set(ppid, [])
    children.get(ppid).push(Number(d))
  }
  for (let i = 0; i < pids.length; i++) {
    for (const c of (children.get(pids[i]) || []).sort((a, b) => a - b)) {
      if (!pids.includes(c)) pids.push(c)
    }
  }
  return pids
}

function serverRssKb (o) {
  let sum = 0
  for (const pid of serverPids(o)) {
    try { sum += rssKb(pid) || 0 } catch {}
  }
  return sum
}

function hostTicks () {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f
  const busy = user + nice + system + irq + softirq + steal
  return { busy, total: busy + idle + iowait }
}

// CPU over a window: server (from /proc), generator (process.cpuUsage), whole host.
class Meter {
  constructor (o) { this.o = o }
  start () {
    this.t0 = now()
    this.s0 = new Map()
    for (const pid of serverPids(this.o)) this.s0.set(pid, ticksOrNull(pid))
    this.r0 = this.o.redisPid ? ticksOrNull(this.o.redisPid) : null
    this.g0 = process.cpuUsage()
    this.h0 = hostTicks()
    this.eld = monitorEventLoopDelay({ resolution: 5 })
    this.eld.enable()
    return this
  }

  stop () {
    const wall = (now() - this.t0) / 1000
    // processes that started meanwhile count from 0; one that exited takes its CPU with it
    // (flagged: server_processes_changed)
    const pids = serverPids(this.o)
    const each = []
    let ticks = 0
    let changed = false
    for (const pid of pids) {
      const t = ticksOrNull(pid)
      if (t === null) { changed = true; continue }
      const t0 = this.s0.has(pid) ? this.s0.get(pid) : 0
      if (!this.s0.has(pid)) changed = true
      each.push([pid, round((t - (t0 ?? 0)) / CLK_TCK)])
      ticks += t - (t0 ?? 0)
    }
    for (const pid of this.s0.keys()) if (!pids.includes(pid)) changed = true
    const serverS = ticks / CLK_TCK
    const r1 = this.o.redisPid ? ticksOrNull(this.o.redisPid) : null
    const redisS = (r1 !== null && this.r0 !== null) ? (r1 - this.r0) / CLK_TCK : null
    const g = process.cpuUsage(this.g0)
    const genS = (g.user + g.system) / 1e6
    const h = hostTicks()
    const hostBusy = h.busy - this.h0.busy
    const hostTotal = h.total - this.h0.total
    const hostPct = hostTotal > 0 ? 100 * NCPU * hostBusy / hostTotal : 0
    this.eld.disable()
    const serverPct = 100 * serverS / wall
    const genPct = 100 * genS / wall
    const redisPct = redisS !== null ? 100 * redisS / wall : 0
    const out = {
      wall_s: round(wall),
      server_cpu_s: round(serverS),
      server_cpu_pct: round(serverPct, 1),
      generator_cpu_pct: round(genPct, 1),
      generator_loop_delay_p99_ms: round(this.eld.percentile(99) / 1e6, 2),
      generator_saturated: genPct >= 90,
      host_cpu_pct: round(hostPct, 1),
      host_background_cpu_pct: round(Math.max(0, hostPct - serverPct - genPct - redisPct), 1)
    }
    if (pids.length > 1 || changed) {
      out.server_processes = each.length
      out.server_cpu_s_each = each // [pid, CPU s]: the --pid list in order, then descendants
      out.server_processes_changed = changed
    }
    if (redisS !== null) {
      out.redis_cpu_s = round(redisS)
      out.redis_cpu_pct = round(redisPct, 1)
    }
    return out
  }
}

// Latency samples (ms), exact percentiles.
class Samples {
  constructor () { this.a = new Float64Array(1 << 14); this.n = 0 }
  add (v) {
    if (this.n === this.a.length) {
      const b = new Float64Array(this.a.length * 2)
      b.set(this.a)
      this.a = b
    }
    this.a[this.n++] = v
  }

  summary () {
    const n = this.n
    if (n === 0) return { n: 0 }
    const s = this.a.slice(0, n).sort()
    const pct = p => s[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))]
    let sum = 0
    for (let i = 0; i < n; i++) sum += s[i]
    // the latency curve for the charts: quantiles on a logit-like grid
    const curve = []
    for (const p of [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98,
      0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999]) {
      if (p <= 1 - 1 / n || p <= 0.5) curve.push([p, round(pct(p), 3)])
    }
    curve.push([1, round(s[n - 1], 3)])
    return {
      n,
      mean_ms: round(sum / n),
      p50_ms: round(pct(0.5)),
      p95_ms: round(pct(0.95)),
      p99_ms: round(pct(0.99)),
      p999_ms: round(pct(0.999)),
      max_ms: round(s[n - 1]),
      curve
    }
  }
}

// ------------------------------------------------------------------------------------------
// a raw y-websocket client

// --local-addresses A,B,...: the source addresses of the client sockets, round robin (each
// loopback address has its own ~28,000 ephemeral ports: 50,000 connections need several)
const LOCAL = { addrs: [], next: 0 }

const closeCodes = {} // close code (or error) -> count, for connections closed before we did
let closingAll = false

// The Hocuspocus framing (--protocol hocuspocus; set by main)
const HP = { on: false, path: '', acks: 0 }
const HP_AUTH = 2
const HP_SYNC_REPLY = 4
const HP_SYNC_STATUS = 8

function hocuspocusAuth () {
  const m = [HP_AUTH, 0] // Auth, Token
  pushVarString(m, 'bench')
  pushVarString(m, 'ybench')
  return Buffer.from(m)
}

class Client {
  constructor (url, { onUpdate = null, onAwareness = null, onStep2 = null } = {}) {
    this.url = url
    this.onUpdate = onUpdate
    this.onAwareness = onAwareness
    this.onStep2 = onStep2
    this.synced = false
    this.ws = null
    this.tStart = 0
    this.tSynced = 0
    this.prefix = null
    if (HP.on) {
      // the room's y-websocket URL (BASE/ws/NAME) becomes BASE + path and the document NAME
      const at = url.indexOf('/ws/')
      this.url = url.slice(0, at) + HP.path
      const name = []
      pushVarString(name, decodeURIComponent(url.slice(at + 4)))
      this.prefix = Buffer.from(name)
    }
  }

  // Resolves on sync step 2 from the server (the "synced" event of a y-websocket provider).
  open (timeoutMs = 30000) {
    this.tStart = now()
    return new Promise((resolve, reject) => {
      let done = false
      const finish = err => {
        if (done) return
        done = true
        clearTimeout(timer)
        err ? reject(err) : resolve(this)
      }
      const timer = setTimeout(() => finish(new Error('sync timeout')), timeoutMs)
      const opts = { perMessageDeflate: false }
      if (LOCAL.addrs.length) opts.localAddress = LOCAL.addrs[LOCAL.next++ % LOCAL.addrs.length]
      const ws = new WebSocket(this.url, opts)
      this.ws = ws
      ws.on('open', () => this.send(HP.on ? hocuspocusAuth() : STEP1_EMPTY))
      ws.on('message', (data) => {
        if (HP.on) {
          data = this.unwrap(data)
          if (data === null) return
        }
        if (!this.synced && data[0] === 0 && data[1] === 1) {
          this.synced = true
          this.tSynced = now()
          this.firstStep2 = data
          finish()
          return
        }
        this.handle(data)
      })
      ws.on('error', err => {
        if (!done) closeCodes[err.code || err.message] = (closeCodes[err.code || err.message] || 0) + 1
        finish(err)
      })
      ws.on('close', (code) => {
        if (!closingAll && !this.closedByUs) closeCodes[code] = (closeCodes[code] || 0) + 1
        finish(new Error(`closed ${code} before sync`))
      })
    })
  }

  // A Hocuspocus message without its document name, as the y-websocket message it carries;
  // null for what the Hocuspocus protocol alone has (auth, acks), handled here.
  unwrap (data) {
    rpos = 0
    const nameLength = readVarUint(data) // the document name
    rpos += nameLength
    let type = data[rpos]
    if (type === HP_SYNC_REPLY) type = 0
    if (type === HP_SYNC_STATUS) { HP.acks++; return null }
    if (type === HP_AUTH) {
      const kind = data[rpos + 1]
      if (kind === 2) this.send(STEP1_EMPTY) // Authenticated: sync
      else this.ws.close() // PermissionDenied: counted by the close handler
      return null
    }
    const out = data.subarray(rpos)
    if (out[0] !== type) { out[0] = type }
    return out
  }

  handle (data) {
    const type = data[0]
    if (type === 0) {
      const kind = data[1]
      if (kind === 2) {
        if (this.onUpdate) {
          rpos = 2
          readVarUint(data) // update length
          readVarUint(data) // number of clients
          const structs = readVarUint(data)
          const client = readVarUint(data)
          const clock = readVarUint(data)
          this.onUpdate(client, clock, this, structsSpan(data, structs))
        }
      } else if (kind === 0) {
        this.send(STEP2_EMPTY) // what a provider with nothing to add answers
      } else if (kind === 1 && this.onStep2) {
        this.onStep2(data)
      }
    } else if (type === 1 && this.onAwareness) {
      rpos = 1
      readVarUint(data) // length
      if (readVarUint(data) === 0) return // an empty awareness update: a heartbeat
      const client = readVarUint(data)
      const clock = readVarUint(data)
      this.onAwareness(client, clock, this)
    }
  }

  send (buf) { this.ws.send(this.prefix === null ? buf : Buffer.concat([this.prefix, buf])) }

  terminate () {
    this.closedByUs = true
    if (this.ws) this.ws.terminate()
  }
}

async function openAll (clients, concurrency, timeoutMs) {
  let next = 0
  let failures = 0
  const worker = async () => {
    while (next < clients.length) {
      const c = clients[next++]
      try {
        await c.open(timeoutMs)
      } catch (e) {
        failures++
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, clients.length) }, worker))
  return failures
}

function closeAll (clients) {
  closingAll = true
  for (const c of clients) {
    try { c.terminate() } catch {}
  }
}

let clientIds = 1000 + Math.floor(Math.random() * 1e6) * 100
const nextClientId = () => clientIds++

// ------------------------------------------------------------------------------------------
// scenario: connect

async function connect (o) {
  const n = o.n ?? 1000
  const rooms = o.rooms ?? Math.max(1, Math.round(n / 5))
  const clients = []
  for (let i = 0; i < n; i++) clients.push(new Client(`${o.url}/ws/${o.prefix}/room-${i % rooms}`))
  await sleep(200)
  const rssBefore = serverRssKb(o)
  const meter = new Meter(o).start()
  const t0 = now()
  const failures = await openAll(clients, o.concurrency ?? 100, o.timeoutMs ?? 60000)
  const allSynced = now() - t0
  const cpu = meter.stop()
  const hs = new Samples()
  for (const c of clients) if (c.synced) hs.add(c.tSynced - c.tStart)
  await sleep(o.holdMs ?? 3000)
  const rssAfter = serverRssKb(o)
  const open = clients.filter(c => c.ws && c.ws.readyState === WebSocket.OPEN).length
  const h = hs.summary()
  closeAll(clients)
  return {
    n,
    rooms,
    concurrency: o.concurrency ?? 100,
    all_synced_ms: round(allSynced, 1),
    synced: h.n,
    failures,
    still_open_after_hold: open,
    handshake_p50_ms: h.p50_ms,
    handshake_p99_ms: h.p99_ms,
    handshake_max_ms: h.max_ms,
    rss_before_mb: round(rssBefore / 1024, 1),
    rss_after_mb: round(rssAfter / 1024, 1),
    rss_per_conn_kb: round((rssAfter - rssBefore) / n, 2),
    server_cpu_connect_s: cpu.server_cpu_s,
    ...cpu
  }
}

// ------------------------------------------------------------------------------------------
// rooms with one writer each: fanout and the throughput ladders

const CHARS = 'abcdefghijklmnopqrstuvwxyz'

class Writer {
  constructor (client, readers) {
    this.client = client
    this.id = nextClientId()
    this.clock = 0
    this.len = 8 // characters per update: clock = seq * len
    this.sent = new Float64Array(1024) // send time by sequence number
    this.seq = 0
    this.readers = readers
  }

  sendNext () {
    const seq = this.seq++
    if (seq === this.sent.length) {
      const b = new Float64Array(this.sent.length * 2)
      b.set(this.sent)
      this.sent = b
    }
    const str = CHARS[seq % 26].repeat(this.len - 1) + '\n'
    const msg = insertMessage(this.id, seq * this.len, str)
    const t = now()
    this.sent[seq] = t
    this.client.send(msg)
    return t
  }
}

class Phase {
  constructor () {
    this.winStart = Infinity
    this.winEnd = Infinity
    this.measuring = false
    this.expected = 0 // deliveries expected for the sends inside the window
    this.delivered = 0 // ... of which arrived
    this.lat = new Samples()
    this.receivedInWindow = 0 // deliveries received while the CPU meter ran (any send time)
    this.echoes = 0
  }

  record (t0, t) {
    if (this.measuring) this.receivedInWindow++
    if (t0 >= this.winStart && t0 < this.winEnd) {
      this.delivered++
      this.lat.add(t - t0)
    }
  }
}

async function setupRooms (o, rooms, clients) {
  const writersById = new Map()
  const all = []
  const writers = []
  const state = { phase: new Phase() }
  const onUpdate = (client, clock, receiver, span) => {
    const w = writersById.get(client)
    if (w === undefined) return
    if (receiver === w.client) { state.phase.echoes++; return }
    const t = now()
    const last = clock + Math.max(span ?? w.len, w.len) // a merged update holds several writes
    for (let c = clock; c < last; c += w.len) {
      const t0 = w.sent[c / w.len]
      if (t0 !== undefined) state.phase.record(t0, t)
    }
  }
  for (let r = 0; r < rooms; r++) {
    const url = `${o.url}/ws/${o.prefix}/room-${r}`
    const readerUrl = `${o.readerUrl ?? o.url}/ws/${o.prefix}/room-${r}`
    const wc = new Client(url, { onUpdate })
    const w = new Writer(wc, clients - 1)
    writersById.set(w.id, w)
    writers.push(w)
    all.push(wc)
    for (let i = 1; i < clients; i++) all.push(new Client(readerUrl, { onUpdate }))
  }
  const t0 = now()
  const failures = await openAll(all, o.concurrency ?? 100, o.timeoutMs ?? 60000)
  return { all, writers, state, failures, connect_ms: round(now() - t0, 1) }
}

// Send `rate` updates/s in total, round robin over the writers, for warmup + duration; measure
// over the window after the warm-up; then wait (bounded) for the stragglers.
async function runPhase (o, ctx, rate, warmupMs, durationMs, drainMs = 2000) {
  const phase = ctx.state.phase = new Phase()
  const { writers } = ctx
  const start = now()
  phase.winStart = start + warmupMs
  phase.winEnd = phase.winStart + durationMs
  const meter = new Meter(o)
  let cpu = null
  let sent = 0
  let rr = 0
  await new Promise(resolve => {
    const tick = () => {
      const t = now()
      if (!phase.measuring && cpu === null && t >= phase.winStart) {
        meter.start()
        phase.measuring = true
      }
      if (t >= phase.winEnd) {
        phase.measuring = false
        cpu = meter.stop()
        resolve()
        return
      }
      const due = Math.floor((t - start) * rate / 1000) + 1
      while (sent < due) {
        const w = writers[rr]
        rr = (rr + 1) % writers.length
        const ts = w.sendNext()
        if (ts >= phase.winStart && ts < phase.winEnd) phase.expected += w.readers
        sent++
      }
      const nextAt = start + sent * 1000 / rate
      setTimeout(tick, Math.max(0, Math.min(nextAt, phase.winStart, phase.winEnd) - now()))
    }
    tick()
  })
  const drainStart = now()
  while (phase.delivered < phase.expected && now() - drainStart < drainMs) await sleep(10)
  const lat = phase.lat.summary()
  const windowS = durationMs / 1000
  const deliveredFrac = phase.expected ? phase.delivered / phase.expected : 1
  return {
    rate,
    updates_sent_per_s: round(phase.expected / (writers[0].readers || 1) / windowS, 1),
    deliveries_per_s: round(phase.delivered / windowS, 1),
    expected: phase.expected,
    delivered: phase.delivered,
    undelivered: phase.expected - phase.delivered,
    delivered_frac: round(deliveredFrac, 5),
    p50_ms: lat.p50_ms,
    p95_ms: lat.p95_ms,
    p99_ms: lat.p99_ms,
    p999_ms: lat.p999_ms,
    max_ms: lat.max_ms,
    mean_ms: lat.mean_ms,
    latency_curve: lat.curve,
    received_in_window: phase.receivedInWindow,
    server_cpu_us_per_delivery: phase.receivedInWindow
      ? round(cpu.server_cpu_s * 1e6 / phase.receivedInWindow, 2) : null,
    // per update: deliveries / readers per update (every writer has the same number of readers)
    server_cpu_us_per_update: phase.receivedInWindow
      ? round(cpu.server_cpu_s * 1e6 * (writers[0].readers || 1) / phase.receivedInWindow, 2) : null,
    ...(cpu.redis_cpu_s != null && phase.receivedInWindow ? {
      redis_cpu_us_per_delivery: round(cpu.redis_cpu_s * 1e6 / phase.receivedInWindow, 2),
      redis_cpu_us_per_update: round(cpu.redis_cpu_s * 1e6 * (writers[0].readers || 1) / phase.receivedInWindow, 2)
    } : {}),
    ...cpu
  }
}

async function fanout (o) {
  const rooms = o.rooms ?? 100
  const clients = o.clients ?? 10
  const ctx = await setupRooms(o, rooms, clients)
  log(`fanout: ${ctx.all.length} connected in ${ctx.connect_ms} ms (${ctx.failures} failures)`)
  await sleep(500)
  const r = await runPhase(o, ctx, o.rate ?? 100, o.warmupMs ?? 2000, o.durationMs ?? 15000)
  const rss = serverRssKb(o)
  closeAll(ctx.all)
  return { rooms, clients, connections: ctx.all.length, connect_failures: ctx.failures, connect_ms: ctx.connect_ms, server_rss_mb: round(rss / 1024, 1), ...r }
}

async function throughput (o) {
  const rooms = o.rooms ?? 10
  const clients = o.clients ?? 10
  const factor = o.factor ?? 1.5
  const maxP99 = o.maxP99Ms ?? 50
  const minDelivered = o.minDelivered ?? 0.99
  const ctx = await setupRooms(o, rooms, clients)
  log(`throughput: ${ctx.all.length} connected in ${ctx.connect_ms} ms (${ctx.failures} failures)`)
  await sleep(500)
  const steps = []
  let rate = o.startRate ?? 200
  let best = null
  let stop = 'max-steps'
  for (let i = 0; i < (o.maxSteps ?? 20); i++) {
    let r = await runPhase(o, ctx, rate, o.warmupMs ?? 1000, o.stepMs ?? 3000)
    let ok = r.p99_ms <= maxP99 && r.delivered_frac >= minDelivered
    log(`  ${rate.toFixed(0)} updates/s: ${r.deliveries_per_s} deliveries/s p99 ${r.p99_ms} ms delivered ${r.delivered_frac} server ${r.server_cpu_pct}% gen ${r.generator_cpu_pct}% ${ok ? 'ok' : 'FAIL'}`)
    r.ok = ok
    steps.push(r)
    if (!ok) { // one confirming re-run of a failed step
      await sleep(1000)
      r = await runPhase(o, ctx, rate, o.warmupMs ?? 1000, o.stepMs ?? 3000)
      ok = r.p99_ms <= maxP99 && r.delivered_frac >= minDelivered
      r.ok = ok
      r.rerun = true
      steps.push(r)
      log(`  ${rate.toFixed(0)} updates/s (re-run): ${r.deliveries_per_s} deliveries/s p99 ${r.p99_ms} ms delivered ${r.delivered_frac} ${ok ? 'ok' : 'FAIL'}`)
    }
    if (!ok) {
      stop = r.delivered_frac < minDelivered ? 'delivery' : 'p99'
      if (r.generator_saturated) stop += '+generator-saturated'
      break
    }
    best = r
    rate *= factor
  }
  closeAll(ctx.all)
  return {
    rooms,
    clients,
    connections: ctx.all.length,
    connect_failures: ctx.failures,
    max_p99_ms: maxP99,
    min_delivered: minDelivered,
    stop_reason: stop,
    max_sustained_deliveries_per_s: best ? best.deliveries_per_s : 0,
    max_sustained_updates_per_s: best ? best.updates_sent_per_s : 0,
    best,
    steps
  }
}

// ------------------------------------------------------------------------------------------
// scenario: awareness

const COLORS = ['#30bced', '#6eeb83', '#ffbc42', '#ecd444', '#ee6352', '#9ac2c9', '#8acb88']

async function awareness (o) {
  const rooms = o.rooms ?? 5
  const clients = o.clients ?? 20
  const hz = o.hz ?? 10
  const byId = new Map()
  const state = { phase: new Phase() }
  const onAwareness = (client, clock, receiver) => {
    const s = byId.get(client)
    if (s === undefined) return
    if (s.client === receiver) { state.phase.echoes++; return }
    const t0 = s.sent[clock]
    if (t0 !== undefined) state.phase.record(t0, now())
  }
  const senders = []
  const all = []
  for (let r = 0; r < rooms; r++) {
    for (let i = 0; i < clients; i++) {
      const c = new Client(`${o.url}/ws/${o.prefix}/room-${r}`, { onAwareness })
      const s = {
        client: c,
        id: nextClientId(),
        clock: 0,
        sent: new Float64Array(1024),
        readers: clients - 1,
        name: `user-${r}-${i}`,
        color: COLORS[i % COLORS.length],
        sendNext () {
          const clock = ++this.clock
          if (clock >= this.sent.length) {
            const b = new Float64Array(this.sent.length * 2)
            b.set(this.sent)
            this.sent = b
          }
          const pos = clock * 7 % 5000
          const json = `{"user":{"name":"${this.name}","color":"${this.color}"},"cursor":{"anchor":${pos},"head":${pos + (clock % 3)}}}`
          const msg = awarenessMessage(this.id, clock, json)
          const t = now()
          this.sent[clock] = t
          this.client.send(msg)
          return t
        }
      }
      byId.set(s.id, s)
      senders.push(s)
      all.push(c)
    }
  }
  const t0 = now()
  const failures = await openAll(all, o.concurrency ?? 100, o.timeoutMs ?? 60000)
  const connectMs = round(now() - t0, 1)
  await sleep(500)
  const ctx = { writers: senders, state }
  const r = await runPhase(o, ctx, rooms * clients * hz, o.warmupMs ?? 2000, o.durationMs ?? 10000)
  closeAll(all)
  return { rooms, clients, hz, connections: all.length, connect_failures: failures, connect_ms: connectMs, echoes: state.phase.echoes, ...r }
}

// ------------------------------------------------------------------------------------------
// scenario: bigdoc (and the commit observations of the persistence scenario)

function healthzSampler (url, intervalMs) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const samples = [] // [t, uncommitted_updates]
  let stopped = false
  let errors = 0
  const once = () => new Promise(resolve => {
    const t = now()
    const req = http.get(url, { agent }, res => {
      let body = ''
      res.on('data', d => { body += d })
      res.on('end', () => {
        try { samples.push([round((t + now()) / 2, 3), JSON.parse(body).uncommitted_updates]) } catch { errors++ }
        resolve()
      })
    })
    req.on('error', () => { errors++; resolve() })
  })
  const loop = (async () => {
    while (!stopped) {
      const t = now()
      await once()
      const wait = intervalMs - (now() - t)
      if (wait > 0) await sleep(wait)
    }
  })()
  return {
    samples,
    async stop () { stopped = true; await loop; agent.destroy(); return errors },
    once
  }
}

function interp (xs, ys, x) { // piecewise linear, xs increasing, clamped
  if (x <= xs[0]) return ys[0]
  if (x >= xs[xs.length - 1]) return ys[ys.length - 1]
  let lo = 0
  let hi = xs.length - 1
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1
    if (xs[mid] <= x) lo = mid; else hi = mid
  }
  const f = (x - xs[lo]) / (xs[hi] - xs[lo] || 1)
  return ys[lo] + f * (ys[hi] - ys[lo])
}

async function joinOnce (url, expectChars, timeoutMs = 120000) {
  const c = new Client(url)
  const t0 = now()
  await c.open(timeoutMs)
  const ms = now() - t0
  const step2 = c.firstStep2
  const bytes = step2 ? step2.length : 0
  let chars = null
  if (expectChars != null && step2) {
    const Y = await import('yjs')
    rpos = 2
    const len = readVarUint(step2)
    const doc = new Y.Doc()
    Y.applyUpdate(doc, step2.subarray(rpos, rpos + len))
    chars = doc.getText(ROOT).length
  }
  c.terminate()
  return { ms: round(ms, 2), bytes, chars }
}

async function bigdoc (o) {
  const n = o.updates ?? 100000
  const chars = o.chars ?? 10
  const probeEvery = o.probeEvery ?? (o.healthz ? 100 : 1000)
  const window = o.window ?? Math.max(4, Math.ceil(4000 / probeEvery))
  const room = `${o.url}/ws/${o.prefix}/big`
  const id = nextClientId()
  let acked = 0
  let waiter = null
  const probeAt = [] // updates sent before each probe
  const ack = [[0, 0]] // [t, updates processed by then]
  let echoes = 0
  const builder = new Client(room, {
    onStep2: () => {
      ack.push([now(), probeAt[acked]])
      acked++
      if (waiter) { const w = waiter; waiter = null; w() }
    },
    onUpdate: () => { echoes++ }
  })
  await builder.open()
  const sampler = o.healthz ? healthzSampler(o.healthz, o.healthzIntervalMs ?? 10) : null
  const rssBefore = serverRssKb(o)
  const meter = new Meter(o).start()
  const t0 = now()
  ack[0][0] = t0
  let closed = null
  builder.ws.on('close', code => { closed = code })
  let buildError = null
  for (let i = 0; i < n; i++) {
    const str = CHARS[i % 26].repeat(chars - 1) + ' '
    builder.send(insertMessage(id, i * chars, str))
    if ((i + 1) % probeEvery === 0 || i === n - 1) {
      builder.send(step1For(id, (i + 1) * chars))
      probeAt.push(i + 1)
      while (probeAt.length - acked > window && closed === null) {
        await new Promise(resolve => { waiter = resolve; setTimeout(resolve, 1000) })
        if (now() - t0 > (o.timeoutMs ?? 600000)) { buildError = 'timeout'; break }
      }
      if (closed !== null || buildError) break
    }
    if (i % 20000 === 19999) log(`  bigdoc: ${i + 1} sent, ${ack[ack.length - 1][1]} applied, ${round((now() - t0) / 1000, 1)} s`)
  }
  while (acked < probeAt.length && closed === null && !buildError) {
    await new Promise(resolve => { waiter = resolve; setTimeout(resolve, 1000) })
    if (now() - t0 > (o.timeoutMs ?? 600000)) buildError = 'timeout'
  }
  if (closed !== null) buildError = `builder closed by server with ${closed}`
  const ingestMs = ack[ack.length - 1][0] - t0
  const cpu = meter.stop()
  const rssBuilt = serverRssKb(o)
  // ingest rate along the way: updates/s over each tenth of the document
  const curve = []
  for (let k = 1; k <= 10; k++) {
    const target = Math.round(n * k / 10)
    const j = ack.findIndex(a => a[1] >= target)
    if (j > 0) curve.push([target, round(ack[j][0] - t0, 1)])
  }
  const result = {
    updates: n,
    chars,
    probe_every: probeEvery,
    build_error: buildError,
    applied: ack[ack.length - 1][1],
    ingest_ms: round(ingestMs, 1),
    ingest_updates_per_s: round(ack[ack.length - 1][1] / (ingestMs / 1000), 1),
    ingest_curve: curve,
    echoes_to_builder: echoes,
    rss_before_mb: round(rssBefore / 1024, 1),
    rss_after_build_mb: round(rssBuilt / 1024, 1),
    ...cpu
  }
  if (sampler) {
    // wait for the store to catch up, then reconstruct commit progress:
    // processed(t) from the probe replies, committed(t) = processed(t) - uncommitted(t).
    const tEnd = now()
    while (now() - tEnd < 30000) {
      const last = sampler.samples[sampler.samples.length - 1]
      if (last && last[0] > tEnd && last[1] === 0) break
      await sleep(10)
    }
    const errors = await sampler.stop()
    if (process.env.YBENCH_DEBUG) log(JSON.stringify({ samples: sampler.samples, ack, t0, tEnd }))
    const s = sampler.samples.filter(x => x[0] >= t0)
    const at = ack.map(a => a[0])
    const an = ack.map(a => a[1])
    let committed = 0
    const ct = []
    const cn = []
    for (const [t, backlog] of s) {
      committed = Math.max(committed, Math.round(interp(at, an, t)) - backlog)
      ct.push(t)
      cn.push(committed)
    }
    const lags = new Samples()
    const total = result.applied
    for (let i = 100; i <= total; i += 100) {
      const tApplied = interp(an, at, i)
      let j = cn.findIndex(c => c >= i)
      if (j < 0) continue
      lags.add(Math.max(0, ct[j] - tApplied))
    }
    const tAll = ct[cn.findIndex(c => c >= total)] ?? null
    const lag = lags.summary()
    let maxBacklog = 0
    for (const [, b] of s) maxBacklog = Math.max(maxBacklog, b)
    Object.assign(result, {
      healthz_samples: s.length,
      healthz_errors: errors,
      healthz_interval_ms: o.healthzIntervalMs ?? 10,
      max_uncommitted: maxBacklog,
      all_committed_ms: tAll !== null ? round(tAll - t0, 1) : null,
      committed_updates_per_s: tAll !== null ? round(total / ((tAll - t0) / 1000), 1) : null,
      commit_lag_p50_ms: lag.p50_ms,
      commit_lag_p99_ms: lag.p99_ms,
      commit_lag_max_ms: lag.max_ms
    })
  }
  const joins = []
  if (!buildError) {
    for (let k = 0; k < (o.joins ?? 3); k++) {
      try {
        joins.push(await joinOnce(room, k === 0 ? n * chars : null))
      } catch (e) {
        joins.push({ error: String(e.message || e) })
      }
    }
  }
  const ok = joins.filter(j => j.ms != null)
  const ms = ok.map(j => j.ms).sort((a, b) => a - b)
  result.joins = joins
  result.join_ms_median = ms.length ? ms[Math.floor((ms.length - 1) / 2)] : null
  result.join_ok = ok.length
  result.step2_bytes = ok.length ? ok[0].bytes : null
  result.doc_chars = joins[0] ? joins[0].chars : null
  result.doc_complete = result.doc_chars === n * chars
  result.rss_after_joins_mb = round(serverRssKb(o) / 1024, 1)
  builder.terminate()
  return result
}

async function join (o) {
  const url = `${o.url}/ws/${o.prefix}/${o.room ?? 'big'}`
  const joins = []
  const rssBefore = rssKb(o.pid)
  const t0 = procTicks(o.pid)
  for (let k = 0; k < (o.joins ?? 3); k++) {
    try {
      joins.push(await joinOnce(url, k === 0 ? (o.expectChars ?? null) : null))
    } catch (e) {
      joins.push({ error: String(e.message || e) })
    }
  }
  return {
    joins,
    cold_join_ms: joins[0].ms ?? null,
    warm_join_ms: joins.length > 1 ? joins[joins.length - 1].ms ?? null : null,
    doc_chars: joins[0].chars ?? null,
    doc_complete: o.expectChars != null ? joins[0].chars === o.expectChars : null,
    step2_bytes: joins[0].bytes ?? null,
    server_cpu_s: round((procTicks(o.pid) - t0) / CLK_TCK),
    rss_before_mb: round(rssBefore / 1024, 1),
    rss_after_mb: round(rssKb(o.pid) / 1024, 1)
  }
}

// ------------------------------------------------------------------------------------------
// building a document through the protocol, paced (bigjoin, keystroke)

// `n` appends of `chars` characters by client `id` into the room at `url`, a sync step 1 probe
// after every `probeEvery` and at most `window` probes unanswered (the server keeps up instead
// of queueing the whole document); resolves once the server answered the last probe, i.e. has
// applied everything. The builder then disconnects (the history's author is gone).
// With `authors` > 1 the appends take turns between that many client ids (ids[0] = `id`), as
// people writing one after another: Yjs cannot merge one author's consecutive appends into one
// string then (it does for one author, copying the string each time: quadratic in the
// references), and the document holds n items, as a document written over time does.
async function buildDoc (o, url, id, n, chars, probeEvery = 100, window = 4, authors = 1) {
  const ids = [id]
  while (ids.length < authors) ids.push(nextClientId())
  const clocks = ids.map(() => 0)
  let last = null // the text's last character, [client, clock]
  let acked = 0
  let waiter = null
  const builder = new Client(url, {
    onStep2: () => { acked++; if (waiter) { const w = waiter; waiter = null; w() } }
  })
  await builder.open(o.timeoutMs ?? 60000)
  let closed = null
  builder.ws.on('close', code => { closed = code })
  const t0 = now()
  let probes = 0
  let error = null
  const wait = async () => {
    await new Promise(resolve => { waiter = resolve; setTimeout(resolve, 1000) })
    if (now() - t0 > (o.timeoutMs ?? 600000)) error = 'timeout'
  }
  for (let i = 0; i < n && closed === null && !error; i++) {
    const str = CHARS[i % 26].repeat(chars - 1) + ' '
    const a = i % authors
    builder.send(syncMessage(2, updateAppend(ids[a], clocks[a], str, last)))
    clocks[a] += chars
    last = [ids[a], clocks[a] - 1]
    if ((i + 1) % probeEvery === 0 || i === n - 1) {
      builder.send(step1ForAll(ids.map((c, k) => [c, clocks[k]])))
      probes++
      while (probes - acked > window && closed === null && !error) await wait()
    }
    if (i % 5000 === 4999) log(`  build: ${i + 1}/${n} sent, ${round((now() - t0) / 1000, 1)} s`)
  }
  while (acked < probes && closed === null && !error) await wait()
  if (closed !== null) error = `builder closed by server with ${closed}`
  const ms = now() - t0
  builder.terminate()
  return { build_ms: round(ms, 1), build_error: error, history_chars: n * chars, ids }
}

function vmKb (pid, field) {
  const m = new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) : 0
}

function sumVmKb (o, field) {
  let sum = 0
  for (const pid of serverPids(o)) {
    try { sum += vmKb(pid, field) } catch {}
  }
  return sum
}

// ------------------------------------------------------------------------------------------
// scenario: bigjoin (100 clients join a big document at once)

async function bigjoin (o) {
  const n = o.updates ?? 20000
  const chars = o.chars ?? 1000
  const joiners = o.joiners ?? 100
  const room = `${o.url}/ws/${o.prefix}/big`
  const built = await buildDoc(o, room, nextClientId(), n, chars, o.probeEvery ?? 100, o.window ?? 4, o.authors ?? 2)
  delete built.ids
  log(`bigjoin: ${n * chars} chars built in ${built.build_ms} ms ${built.build_error || ''}`)
  const result = { updates: n, chars, authors: o.authors ?? 2, joiners, ...built }
  if (built.build_error) return result
  // a probe client has it all (decoded with Yjs), before anybody joins
  const probe = await joinOnce(room, n * chars, o.timeoutMs ?? 120000)
  result.probe_join_ms = probe.ms
  result.doc_bytes = probe.bytes
  result.doc_chars = probe.chars
  result.doc_complete = probe.chars === n * chars
  await sleep(o.settleMs ?? 2000) // the build's commits and compaction, if any, settle
  const rssBefore = sumVmKb(o, 'VmRSS')
  for (const pid of serverPids(o)) {
    try { fs.writeFileSync(`/proc/${pid}/clear_refs`, '5') } catch (e) { result.clear_refs_error = String(e.message || e) }
  }
  const clients = []
  for (let i = 0; i < joiners; i++) clients.push(new Client(room))
  const bytes = []
  const meter = new Meter(o).start()
  const t0 = now()
  // all at once: each sends sync step 1 with an empty state vector, as a fresh provider
  const outcomes = await Promise.allSettled(clients.map(c => c.open(o.timeoutMs ?? 120000).then(() => {
    bytes.push(c.firstStep2.length)
    c.firstStep2 = null // (20 MB each: let them go)
  })))
  const allMs = now() - t0
  const cpu = meter.stop()
  const peak = sumVmKb(o, 'VmHWM')
  const rssAfter = sumVmKb(o, 'VmRSS')
  const lat = new Samples()
  for (const c of clients) if (c.synced) lat.add(c.tSynced - c.tStart)
  const h = lat.summary()
  closeAll(clients)
  const failures = outcomes.filter(x => x.status === 'rejected')
  bytes.sort((a, b) => a - b)
  Object.assign(result, {
    all_synced_ms: round(allMs, 1),
    synced: h.n,
    failures: failures.length,
    failure_first: failures.length ? String(failures[0].reason?.message || failures[0].reason) : null,
    join_p50_ms: h.p50_ms,
    join_p99_ms: h.p99_ms,
    join_max_ms: h.max_ms,
    joiner_step2_bytes_min: bytes.length ? bytes[0] : null,
    joiner_step2_bytes_max: bytes.length ? bytes[bytes.length - 1] : null,
    rss_before_join_mb: round(rssBefore / 1024, 1),
    peak_rss_mb: round(peak / 1024, 1),
    rss_after_join_mb: round(rssAfter / 1024, 1),
    server_cpu_join_s: cpu.server_cpu_s,
    ...cpu
  })
  return result
}

// ------------------------------------------------------------------------------------------
// scenario: keystroke (one typist in a document with a long history, one reader)

// One character per update, typed at a cursor in the middle of the history, each after the
// previous: the first between history characters `at - 1` and `at`, the next after it.
class Typist {
  constructor (client, left, right) { // the history's characters around the cursor, [client, clock]
    this.client = client
    this.id = nextClientId()
    this.left = left
    this.right = right
    this.readers = 1
    this.sent = new Float64Array(4096) // send time by clock (one character each)
    this.seq = 0
  }

  sendNext () {
    const clock = this.seq++
    if (clock === this.sent.length) {
      const b = new Float64Array(this.sent.length * 2)
      b.set(this.sent)
      this.sent = b
    }
    const origin = clock === 0 ? this.left : [this.id, clock - 1]
    const msg = syncMessage(2, updateInsertBetween(this.id, clock, CHARS[clock % 26], origin, this.right))
    const t = now()
    this.sent[clock] = t
    this.client.send(msg)
    return t
  }
}

async function keystroke (o) {
  const history = o.historyChars ?? 1000
  const chunk = Math.min(o.chunk ?? 1000, history)
  const n = Math.ceil(history / chunk)
  const room = `${o.url}/ws/${o.prefix}/doc`
  const authors = o.authors ?? 2
  const built = await buildDoc(o, room, nextClientId(), n, chunk, o.probeEvery ?? 20, o.window ?? 4, authors)
  const ids = built.ids
  delete built.ids
  log(`keystroke: ${n * chunk} chars of history in ${built.build_ms} ms ${built.build_error || ''}`)
  const result = { history_updates: n, authors, ...built }
  if (built.build_error) return result
  const state = { phase: new Phase() }
  let typist = null
  const onUpdate = (client, clock, receiver, span) => {
    if (typist === null || client !== typist.id) return
    if (receiver === typist.client) { state.phase.echoes++; return }
    const t = now()
    for (let c = clock; c < clock + Math.max(span ?? 1, 1); c++) {
      const t0 = typist.sent[c]
      if (t0 !== undefined && c < typist.seq) state.phase.record(t0, t)
    }
  }
  const reader = new Client(room, { onUpdate })
  const tc = new Client(room, { onUpdate })
  await reader.open(o.timeoutMs ?? 60000)
  await tc.open(o.timeoutMs ?? 60000)
  // the cursor: in the middle of the middle append, between its characters at - 1 and at (the
  // appends took turns between the authors: append k is author k % authors's (k / authors)-th)
  const k = Math.floor(n / 2)
  const within = Math.floor(chunk / 2)
  const idAt = off => [ids[k % authors], Math.floor(k / authors) * chunk + off]
  typist = new Typist(tc, idAt(within - 1), idAt(within))
  // what the server spends with both connected and nobody typing (its timers, the build's
  // compaction if still running): per keystroke at the typing rate, beside the total
  await sleep(500)
  const idle = new Meter(o).start()
  await sleep(o.idleMs ?? 2000)
  const idleCpu = idle.stop()
  const rate = o.rate ?? 100
  const r = await runPhase(o, { writers: [typist], state }, rate, o.warmupMs ?? 3000, o.durationMs ?? 10000)
  const rss = serverRssKb(o)
  closeAll([reader, tc])
  const { server_cpu_us_per_delivery: _a, server_cpu_us_per_update: _b, ...rest } = r
  const perKey = r.expected ? r.server_cpu_s * 1e6 / r.expected : null
  const idlePerKey = idleCpu.server_cpu_s * 1e6 / idleCpu.wall_s / rate
  return {
    ...result,
    keystrokes: r.expected,
    server_cpu_us_per_keystroke: round(perKey, 2),
    server_idle_cpu_pct: idleCpu.server_cpu_pct,
    server_idle_cpu_us_per_keystroke: round(idlePerKey, 2),
    server_cpu_us_per_keystroke_above_idle: perKey === null ? null : round(perKey - idlePerKey, 2),
    server_rss_mb: round(rss / 1024, 1),
    ...rest
  }
}

// ------------------------------------------------------------------------------------------
// selftest: the hand-encoded updates are what Yjs itself would send

async function selftest () {
  const Y = await import('yjs')
  const doc = new Y.Doc()
  doc.clientID = 123456
  const text = doc.getText(ROOT)
  const got = []
  doc.on('update', u => got.push(Buffer.from(u)))
  const strs = ['hello', ' world', 'x', 'é!']
  let clock = 0
  let failures = 0
  for (const s of strs) {
    text.insert(text.length, s)
    const mine = Buffer.from(updateInsert(123456, clock, s))
    const theirs = got[got.length - 1]
    if (!mine.equals(theirs)) {
      failures++
      log(`mismatch for ${JSON.stringify(s)}:\n  mine   ${mine.toString('hex')}\n  yjs    ${theirs.toString('hex')}`)
    }
    clock += s.length
  }
  const other = new Y.Doc()
  let c2 = 0
  for (let i = 0; i < 1000; i++) {
    Y.applyUpdate(other, Buffer.from(updateInsert(77, c2, 'abc')))
    c2 += 3
  }
  if (other.getText(ROOT).length !== 3000) failures++
  const sv = Y.decodeStateVector(step1For(77, 3000).subarray(3))
  if (sv.get(77) !== 3000) failures++
  // appends taking turns between two authors (bigjoin's build): the text Yjs makes of them
  const two = new Y.Doc()
  let want = ''
  let lastId = null
  const ck = { 501: 0, 502: 0 }
  for (let i = 0; i < 10; i++) {
    const c = i % 2 ? 502 : 501
    const str = CHARS[i].repeat(3)
    Y.applyUpdate(two, Buffer.from(updateAppend(c, ck[c], str, lastId)))
    ck[c] += 3
    lastId = [c, ck[c] - 1]
    want += str
  }
  if (two.getText(ROOT).toString() !== want) failures++
  // typing in the middle of a history (keystroke): what Yjs sends for each character
  const typed = new Y.Doc()
  typed.clientID = 4242
  Y.applyUpdate(typed, Y.encodeStateAsUpdate(other))
  const tt = typed.getText(ROOT)
  const sent = []
  typed.on('update', u => sent.push(Buffer.from(u)))
  for (let k = 0; k < 5; k++) {
    tt.insert(1500 + k, CHARS[k])
    const origin = k === 0 ? [77, 1499] : [4242, k - 1]
    const mine = Buffer.from(updateInsertBetween(4242, k, CHARS[k], origin, [77, 1500]))
    if (!mine.equals(sent[sent.length - 1])) {
      failures++
      log(`mismatch typing ${k}:\n  mine   ${mine.toString('hex')}\n  yjs    ${sent[sent.length - 1].toString('hex')}`)
    }
  }
  return { ok: failures === 0, failures }
}

// ------------------------------------------------------------------------------------------

const SCENARIOS = { connect, fanout, throughput, awareness, bigdoc, join, bigjoin, keystroke, selftest }

async function main () {
  const { cmd, o } = parseArgs(process.argv.slice(2))
  const fn = SCENARIOS[cmd]
  if (!fn) {
    console.error(USAGE)
    process.exit(2)
  }
  if (cmd !== 'selftest' && (!o.url || !o.pid)) {
    console.error(`--url and --pid are required\n${USAGE}`)
    process.exit(2)
  }
  o.url = o.url ? o.url.replace(/\/+$/, '') : o.url
  if (o.readerUrl) o.readerUrl = o.readerUrl.replace(/\/+$/, '')
  o.pids = o.pid ? String(o.pid).split(',').map(Number) : []
  o.pid = o.pids[0] // single-process code paths (join) use the first
  o.prefix = o.prefix ?? `bench-${process.pid}`
  if (o.localAddresses) LOCAL.addrs = String(o.localAddresses).split(',')
  if (o.protocol === 'hocuspocus') {
    HP.on = true
    HP.path = o.path ?? ''
  } else if (o.protocol && o.protocol !== 'y-websocket') {
    console.error(`--protocol y-websocket or hocuspocus\n${USAGE}`)
    process.exit(2)
  }
  const started = new Date().toISOString()
  const t0 = now()
  const result = await fn(o)
  const out = {
    scenario: cmd,
    started,
    elapsed_s: round((now() - t0) / 1000, 2),
    close_codes: closeCodes,
    ...(HP.on ? { protocol: 'hocuspocus', sync_status_acks: HP.acks } : {}),
    generator_rss_mb: round(process.memoryUsage().rss / 1048576, 1),
    ...result
  }
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(0)
}

main().catch(e => {
  console.error(e)
  process.exit(1)
})
