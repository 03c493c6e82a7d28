// What the page may honestly say about the connection and about the user's edits.
//
// Connection: connecting (first attempt) / connected / reconnecting / offline (the browser says it
// has no network) / closed (the server refused us with a terminal close code, see closecodes.ts:
// retrying cannot help).
//
// Edits: the y-websocket protocol has no acknowledgements, so the strongest true statement is
// "everything typed here has been handed to the server's connection". That holds when the socket
// is open, the server's sync step 1 has been answered on this connection (the answer carries every
// edit made while we were away), the initial sync is done and the socket's send buffer is empty.
// Until then the edits are "unsent" (kept in this tab). We never claim they are stored on disk.
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import type { WebsocketProvider } from 'y-websocket'
import type * as Y from 'yjs'
import { isTerminal } from './closecodes'

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'closed'
export type EditState = 'synced' | 'syncing' | 'unsent'

export interface Refusal {
  code: number
  reason: string
}

export class ConnectionWatch {
  connection: ConnectionState = 'connecting'
  edits: EditState = 'syncing'
  refusal: Refusal | null = null
  /** When the current outage began (ms), or null while connected. */
  downSince: number | null = null
  lastClose: { code: number; reason: string } | null = null

  private unsent = false
  private answeredServer = false
  private everConnected = false
  private timer = 0

  constructor(
    private readonly provider: WebsocketProvider,
    doc: Y.Doc,
    private readonly onChange: () => void
  ) {
    this.watchSyncSteps()
    provider.on('status', ({ status }) => {
      if (status === 'connected') {
        this.everConnected = true
        this.downSince = null
      } else {
        this.answeredServer = false
        this.downSince ??= Date.now()
      }
      this.update()
    })
    provider.on('sync', () => this.update())
    provider.on('connection-close', (event) => {
      if (event === null) return
      this.lastClose = { code: event.code, reason: event.reason }
      if (isTerminal(event.code)) {
        this.refusal = { code: event.code, reason: event.reason }
        provider.shouldConnect = false
      }
      this.update()
    })
    doc.on('update', (_update: Uint8Array, origin: unknown) => {
      if (origin !== provider) {
        this.unsent = true
        this.update()
      }
    })
    window.addEventListener('online', () => {
      if (!this.refusal) provider.connect()
      this.update()
    })
    window.addEventListener('offline', () => this.update())
  }

  /** Try again after a refusal (e.g. after the user fixed a token). */
  retry(): void {
    this.refusal = null
    this.provider.connect()
    this.update()
  }

  private watchSyncSteps(): void {
    // Note when the server's sync step 1 on this connection has been answered: the provider
    // writes the answer (our step 2) right after this handler returns.
    const handlers = this.provider.messageHandlers
    const original = handlers[0]
    handlers[0] = (encoder, decoder, provider, emitSynced, messageType) => {
      const kind = decoding.peekVarUint(decoder)
      original(encoder, decoder, provider, emitSynced, messageType)
      if (kind === syncProtocol.messageYjsSyncStep1) {
        this.answeredServer = true
        queueMicrotask(() => this.update())
      }
    }
  }

  private update(): void {
    const p = this.provider
    if (this.refusal) this.connection = 'closed'
    else if (p.wsconnected) this.connection = 'connected'
    else if (!navigator.onLine) this.connection = 'offline'
    else this.connection = this.everConnected ? 'reconnecting' : 'connecting'

    const ready = p.wsconnected && p.synced && this.answeredServer
    if (this.unsent && ready && (p.ws?.bufferedAmount ?? 1) === 0) this.unsent = false
    if (this.unsent) this.edits = p.wsconnected ? 'syncing' : 'unsent'
    else this.edits = ready || !p.wsconnected ? 'synced' : 'syncing' // loading, or all sent

    window.clearTimeout(this.timer)
    if (this.unsent && ready) this.timer = window.setTimeout(() => this.update(), 100)
    this.onChange()
  }

  get hasUnsentEdits(): boolean {
    return this.unsent
  }
}
