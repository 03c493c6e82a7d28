// One document: its numbers, its connections in this process (user, address, protocol, since,
// bytes), and the operator's actions: close one connection or all (code 4000: editors
// reconnect), compact now, create a version, delete (after a confirmation).

import type { AdminApi, AdminConnection, DocumentDetail } from './admin-api'
import { NeedToken } from './admin-api'
import { headCell } from './admin-table'
import { ApiError } from './api'
import { h } from './dom'
import { absoluteTime, byteSize, plural, relativeTime } from './format'
import { editorPath } from './names'
import { toast } from './ui'

export class DocumentView {
  readonly el: HTMLElement
  private readonly stats = h('div.stat-row', { 'data-testid': 'doc-stats' })
  private readonly body = h('tbody', { 'data-testid': 'connection-rows' })
  private readonly caption = h('p.table-caption')
  private readonly label = h('input.input.version-label', {
    type: 'text',
    maxLength: 200,
    placeholder: 'Version label (optional)',
    'aria-label': 'Version label',
    'data-testid': 'version-label'
  })
  private readonly closeAll: HTMLButtonElement
  private gone = false

  constructor(
    private readonly api: AdminApi,
    private readonly name: string,
    private readonly changed: () => void
  ) {
    this.closeAll = h(
      'button.btn.ghost',
      { type: 'button', 'data-testid': 'close-all', onclick: () => this.run(() => this.closeEveryone()) },
      'Close all connections'
    )
    this.el = h(
      'section.admin-section',
      { 'data-testid': 'document-view' },
      h('a.back-link', { href: '#/' }, '← All documents'),
      h(
        'div.section-head',
        {},
        h('h2.admin-doc-title', { 'data-testid': 'doc-title' }, name),
        h('a.btn.ghost', { href: editorPath(name), target: '_blank', rel: 'noopener' }, 'Open in editor')
      ),
      this.stats,
      h(
        'div.card.actions-card',
        {},
        h(
          'div.action-group',
          {},
          h(
            'button.btn.ghost',
            { type: 'button', 'data-testid': 'compact', onclick: () => this.run(() => this.compact()) },
            'Compact now'
          ),
          h(
            'form.version-form',
            {
              onsubmit: (event: Event) => {
                event.preventDefault()
                this.run(() => this.version())
              }
            },
            this.label,
            h('button.btn.ghost', { type: 'submit', 'data-testid': 'create-version' }, 'Create version')
          )
        ),
        h(
          'div.action-group',
          {},
          this.closeAll,
          h(
            'button.btn.danger',
            { type: 'button', 'data-testid': 'delete', onclick: () => this.confirmDelete() },
            'Delete document…'
          )
        )
      ),
      h('div.section-head', {}, h('h3', {}, 'Connections here')),
      h(
        'div.card.table-card',
        {},
        this.caption,
        h(
          'table.admin-table',
          {},
          h(
            'thead',
            {},
            h('tr', {}, ...['#', 'User', 'Address', 'Protocol', 'Since', 'In', 'Out', 'Access', ''].map(headCell))
          ),
          this.body
        )
      )
    )
  }

  async refresh(): Promise<void> {
    if (this.gone) return
    let detail: DocumentDetail
    try {
      detail = await this.api.document(this.name)
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        this.showMissing()
        return
      }
      throw error
    }
    this.show(detail)
  }

  private show({ document: d, connections }: DocumentDetail): void {
    const stat = (label: string, value: string, title = ''): HTMLElement =>
      h('div.stat', { title }, h('span.stat-value', {}, value), h('span.stat-label', {}, label))
    this.stats.replaceChildren(
      stat('size', byteSize(d.size_bytes)),
      stat('log rows', String(d.log_rows)),
      stat('versions', String(d.versions)),
      stat(
        'last edit',
        d.updated_at_ms ? relativeTime(d.updated_at_ms) : '—',
        d.updated_at_ms ? absoluteTime(d.updated_at_ms) : ''
      ),
      stat('online', String(d.online))
    )
    this.caption.textContent = `${plural(connections.length, 'connection', 'connections')} in this process`
    this.closeAll.disabled = connections.length === 0
    this.body.replaceChildren(...connections.map((c) => this.row(c)))
    if (connections.length === 0) {
      this.body.append(h('tr', {}, h('td.empty-cell', { colSpan: 9 }, 'Nobody is connected to this document here.')))
    }
  }

  private row(c: AdminConnection): HTMLElement {
    return h(
      'tr',
      { 'data-testid': 'connection-row', 'data-id': String(c.id), 'data-user': c.user ?? '' },
      h('td.num', {}, String(c.id)),
      h('td', {}, c.user ? h('span.user-chip', {}, c.user) : h('span.muted', {}, 'anonymous')),
      h('td', {}, h('code', {}, c.address)),
      h('td', {}, c.protocol),
      h('td', { title: absoluteTime(c.since_ms) }, relativeTime(c.since_ms)),
      h('td.num', {}, byteSize(c.bytes_in)),
      h('td.num', {}, byteSize(c.bytes_out)),
      h('td', {}, c.read_only ? h('span.badge', {}, 'read-only') : 'read & write'),
      h(
        'td.row-action',
        {},
        h(
          'button.btn.ghost.btn-sm',
          {
            type: 'button',
            'data-testid': 'close-connection',
            onclick: () =>
              this.run(async () => {
                await this.api.closeConnection(this.name, c.id)
                toast(`Closed connection #${c.id}${c.user ? ` (${c.user})` : ''}. Its editor reconnects.`)
              })
          },
          'Close'
        )
      )
    )
  }

  private async closeEveryone(): Promise<void> {
    const { closed } = await this.api.closeConnections(this.name)
    toast(`Closed ${plural(closed, 'connection', 'connections')}. Editors reconnect.`)
  }

  private async compact(): Promise<void> {
    const result = await this.api.compact(this.name)
    toast(
      result.compacted
        ? `Compacted ${plural(result.rows, 'log row', 'log rows')}: ${byteSize(result.bytes_before)} → ${byteSize(result.bytes_after)}.`
        : 'Nothing to compact: the log is empty.'
    )
  }

  private async version(): Promise<void> {
    const label = this.label.value.trim() || null
    const made = await this.api.createVersion(this.name, label)
    this.label.value = ''
    toast(`Created version ${made.id}${made.label ? ` “${made.label}”` : ''}.`)
  }

  private confirmDelete(): void {
    const dialog = h('dialog.confirm', { 'data-testid': 'confirm-delete' })
    const close = (): void => {
      dialog.close()
      dialog.remove()
    }
    dialog.append(
      h('h3', {}, `Delete “${this.name}”?`),
      h(
        'p',
        {},
        'Its content, history and versions are removed from the store, and everyone connected is disconnected. This cannot be undone.'
      ),
      h(
        'div.dialog-actions',
        {},
        h('button.btn.ghost', { type: 'button', 'data-testid': 'cancel-delete', onclick: close }, 'Cancel'),
        h(
          'button.btn.danger',
          {
            type: 'button',
            'data-testid': 'confirm-delete-button',
            onclick: () => {
              close()
              this.run(async () => {
                await this.api.delete(this.name)
                this.gone = true
                toast(`Deleted “${this.name}”.`)
                location.hash = '#/'
              })
            }
          },
          'Delete'
        )
      )
    )
    dialog.addEventListener('cancel', () => dialog.remove())
    document.body.append(dialog)
    dialog.showModal()
  }

  private showMissing(): void {
    this.gone = true
    this.el.replaceChildren(
      h('a.back-link', { href: '#/' }, '← All documents'),
      h('p.card.empty-note', { 'data-testid': 'doc-missing' }, `There is no document named “${this.name}”.`)
    )
  }

  /** Run an action, then refresh at once; say what went wrong (a refused token re-asks). */
  private run(action: () => Promise<void>): void {
    action()
      .then(() => this.changed())
      .catch((error: unknown) => {
        if (error instanceof NeedToken) {
          this.changed()
          return
        }
        toast(error instanceof Error ? `Failed: ${error.message}` : 'Failed.')
      })
  }
}
