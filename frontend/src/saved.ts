// Whether what this tab typed is on the server's disk, not only in its memory.
//
// The y-websocket protocol has no acknowledgements (and stock clients must keep working, so the
// server sends no new message type on the socket). Instead the page follows the document's
// Server-Sent Events with ?committed=1: every `committed` notice carries the state vector of what
// the server has durably committed, every `commit_failed` notice the reason a commit failed (it is
// retried). This tab's edits are saved when the committed state vector's clock for this tab's
// client id has reached the local one (a state vector's clock counts the client's items: covered
// means committed >= local). The feed follows the WebSocket: it is opened when the socket is
// connected and closed when the stream breaks (no stream of refused retries while the server is
// down); while it is not open, nothing is claimed ('unknown': the pill says what it said before).
import * as Y from 'yjs'
import { pageToken } from './names'

export type SaveState = 'unknown' | 'saving' | 'saved' | 'failed'

/** How long to wait before opening the feed again after it broke while the socket stayed up:
 * doubled after each attempt that never opened (a server without the feed, a proxy that refuses
 * it), up to the maximum. */
const REOPEN_MS = 2000
const MAX_REOPEN_MS = 60_000

export class SaveWatch {
  state: SaveState = 'unknown'
  /** The last commit failure's reason, until a later commit covers every edit of this tab. */
  error: string | null = null

  private source: EventSource | null = null
  private open = false
  private committed = 0 // this tab's clock in the newest committed state vector
  private reopen = 0 // the timer of the next attempt, 0 when none is waiting
  private failures = 0 // attempts in a row that never opened

  constructor(
    private readonly name: string,
    private readonly doc: Y.Doc,
    private readonly connected: () => boolean,
    private readonly onChange: () => void
  ) {
    doc.on('update', () => this.update())
  }

  /** The WebSocket connected (open the feed, unless waiting to retry) or went away (close it). */
  follow(connected: boolean): void {
    if (connected) {
      if (!this.source && !this.reopen) this.connect()
      return
    }
    window.clearTimeout(this.reopen)
    this.reopen = 0
    if (this.source) this.close()
  }

  private connect(): void {
    // types=none: the committed notices alone, not every event's body (a document.changed
    // carries the document's whole text)
    const params = new URLSearchParams({ committed: '1', types: 'none' })
    const token = pageToken()
    if (token) params.set('token', token)
    // The API takes a document name as ONE path segment ('/' as %2F).
    const source = new EventSource(`/api/documents/${encodeURIComponent(this.name)}/events?${params}`)
    this.source = source
    source.addEventListener('open', () => {
      this.open = true
      this.failures = 0
      this.update()
    })
    source.addEventListener('committed', (event) => this.committedNotice(event as MessageEvent<string>))
    source.addEventListener('commit_failed', (event) => {
      const data = JSON.parse((event as MessageEvent<string>).data) as { error?: string }
      this.error = data.error || 'the server could not store the latest edits'
      this.update()
    })
    source.addEventListener('error', () => {
      // The stream ended or could not open: stop EventSource's own retries and open it again
      // when the socket is back (or soon, if the socket never went away).
      if (!this.open) this.failures++
      const delay = Math.min(REOPEN_MS * 2 ** this.failures, MAX_REOPEN_MS)
      this.reopen = window.setTimeout(() => {
        this.reopen = 0
        this.follow(this.connected())
      }, delay)
      this.close()
    })
  }

  private close(): void {
    this.source?.close()
    this.source = null
    this.open = false
    this.update()
  }

  private committedNotice(event: MessageEvent<string>): void {
    const data = JSON.parse(event.data) as { state_vector: string }
    const bytes = Uint8Array.from(atob(data.state_vector), (c) => c.charCodeAt(0))
    const clock = Y.decodeStateVector(bytes).get(this.doc.clientID) ?? 0
    this.committed = Math.max(this.committed, clock)
    this.update()
  }

  private update(): void {
    const local = Y.decodeStateVector(Y.encodeStateVector(this.doc)).get(this.doc.clientID) ?? 0
    const covered = local <= this.committed
    if (covered) this.error = null
    let state: SaveState
    if (!this.open) state = 'unknown'
    else if (covered) state = 'saved'
    else state = this.error ? 'failed' : 'saving'
    if (state !== this.state) {
      this.state = state
      this.onChange()
    } else if (state === 'failed') {
      this.onChange() // (a newer reason)
    }
  }
}
