// The editor's status pill: one word about the connection and the edits, the rest in its title.
// While connected it says whether this tab's edits are on the server's disk (saved.ts): "Saving…",
// "Saved", or "Not saved" when a commit failed; without that feed, what the socket alone can tell
// ("Synced": handed to the server).
import type { ConnectionState, EditState } from '../connection'
import { h } from '../dom'
import type { SaveState } from '../saved'

export class StatusPill {
  private readonly label = h('span.status-label')
  readonly el = h(
    'div.status',
    { 'data-testid': 'connection', role: 'status', 'aria-live': 'polite' },
    h('span.status-dot'),
    this.label
  )

  show(connection: ConnectionState, edits: EditState, save: SaveState = 'unknown', error: string | null = null): void {
    const { text, detail } =
      connection === 'connected'
        ? (savedText(edits, save, error) ?? statusText(connection, edits))
        : statusText(connection, edits)
    this.el.dataset.state = connection
    this.el.dataset.sync = edits
    this.el.dataset.saved = save
    this.label.textContent = text
    this.el.title = detail
  }
}

function statusText(connection: ConnectionState, edits: EditState): { text: string; detail: string } {
  switch (connection) {
    case 'connecting':
      return { text: 'Connecting…', detail: 'Opening the document on the server.' }
    case 'connected':
      return edits === 'synced'
        ? { text: 'Synced', detail: 'Connected. Everything you typed has been sent to the server.' }
        : { text: 'Syncing…', detail: 'Connected. Exchanging the latest changes with the server.' }
    case 'reconnecting':
      return edits === 'unsent'
        ? {
            text: 'Reconnecting…',
            detail: 'Lost the connection. Your new edits are kept in this tab and sync when it is back.'
          }
        : { text: 'Reconnecting…', detail: 'Lost the connection to the server; trying again.' }
    case 'offline':
      return {
        text: 'Offline',
        detail: 'This device is offline. Keep writing: your edits sync when you are back online.'
      }
    case 'closed':
      return { text: 'Disconnected', detail: 'The server refused this document; see the message above the editor.' }
  }
}

/** What the pill says about the disk while connected, or null to say what the socket tells. */
function savedText(edits: EditState, save: SaveState, error: string | null): { text: string; detail: string } | null {
  switch (save) {
    case 'failed':
      return {
        text: 'Not saved',
        detail: `The server could not store your latest edits on disk (${error}). It keeps trying; keep this tab open.`
      }
    case 'saving':
      return { text: 'Saving…', detail: 'Connected. Your latest edits are being written to the server’s disk.' }
    case 'saved':
      return edits === 'synced'
        ? { text: 'Saved', detail: 'Everything you typed is stored on the server’s disk.' }
        : null // still exchanging the latest changes: "Syncing…"
    default:
      return null
  }
}
