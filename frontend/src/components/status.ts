// The editor's status pill: one word about the connection and the edits, the rest in its title.
import type { ConnectionState, EditState } from '../connection'
import { h } from '../dom'

export class StatusPill {
  private readonly label = h('span.status-label')
  readonly el = h(
    'div.status',
    { 'data-testid': 'connection', role: 'status', 'aria-live': 'polite' },
    h('span.status-dot'),
    this.label
  )

  show(connection: ConnectionState, edits: EditState): void {
    const { text, detail } = statusText(connection, edits)
    this.el.dataset.state = connection
    this.el.dataset.sync = edits
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
