// The documents: search by prefix, with size, log rows, versions, last edit and who is online;
// a row opens the document's view (#/d/<name>).
import type { AdminApi, AdminDocument } from './admin-api'
import { headCell } from './admin-table'
import { h } from './dom'
import { absoluteTime, byteSize, plural, relativeTime } from './format'

export const documentHash = (name: string): string => `#/d/${encodeURIComponent(name)}`

export class DocumentsPanel {
  readonly el: HTMLElement
  private readonly search = h('input.input', {
    type: 'search',
    placeholder: 'Search by name prefix, e.g. team/',
    'aria-label': 'Search documents by name prefix',
    'data-testid': 'doc-search'
  })
  private readonly body = h('tbody', { 'data-testid': 'doc-rows' })
  private readonly more = h('button.btn.ghost', { type: 'button', hidden: true }, 'Show more')
  private readonly note = h('p.table-caption')
  private shown: AdminDocument[] = []
  private cursor: string | null = null
  private prefix = ''

  constructor(private readonly api: AdminApi) {
    let debounce = 0
    this.search.addEventListener('input', () => {
      window.clearTimeout(debounce)
      debounce = window.setTimeout(() => void this.reload(), 200)
    })
    this.more.addEventListener('click', () => void this.loadMore())
    this.el = h(
      'section.admin-section',
      { 'data-testid': 'documents' },
      h('div.section-head', {}, h('h2', {}, 'Documents'), h('div.search-box', {}, this.search)),
      h(
        'div.card.table-card',
        {},
        this.note,
        h(
          'table.admin-table',
          {},
          h('thead', {}, h('tr', {}, ...['Name', 'Size', 'Log rows', 'Versions', 'Last edit', 'Online'].map(headCell))),
          this.body
        ),
        h('div.table-foot', {}, this.more)
      )
    )
  }

  /** The first page again (the periodic refresh keeps as many rows as were shown). */
  async refresh(): Promise<void> {
    const prefix = this.search.value
    const limit = Math.max(50, Math.min(1000, this.shown.length))
    const page = await this.api.documents(prefix, null, limit)
    if (prefix !== this.search.value) return // typed meanwhile: the next refresh shows it
    this.prefix = prefix
    this.shown = page.documents
    this.cursor = page.next_cursor
    this.render()
  }

  private async reload(): Promise<void> {
    this.shown = []
    await this.refresh()
  }

  private async loadMore(): Promise<void> {
    if (!this.cursor) return
    const page = await this.api.documents(this.prefix, this.cursor)
    this.shown = [...this.shown, ...page.documents]
    this.cursor = page.next_cursor
    this.render()
  }

  private render(): void {
    this.body.replaceChildren(...this.shown.map(documentRow))
    if (this.shown.length === 0) {
      this.body.append(
        h(
          'tr',
          {},
          h(
            'td.empty-cell',
            { colSpan: 6 },
            this.prefix ? `No document starts with “${this.prefix}”.` : 'No documents yet.'
          )
        )
      )
    }
    const online = this.shown.reduce((n, d) => n + d.online, 0)
    this.note.textContent = `${this.shown.length}${this.cursor ? '+' : ''} ${this.shown.length === 1 && !this.cursor ? 'document' : 'documents'}${this.prefix ? ` starting with “${this.prefix}”` : ''} · ${plural(online, 'connection', 'connections')} to them here`
    this.more.hidden = this.cursor === null
  }
}

function documentRow(d: AdminDocument): HTMLElement {
  return h(
    'tr',
    { 'data-testid': 'doc-row', 'data-name': d.name },
    h('td', {}, h('a.doc-link', { href: documentHash(d.name) }, d.name)),
    h('td.num', {}, byteSize(d.size_bytes)),
    h('td.num', {}, String(d.log_rows)),
    h('td.num', {}, String(d.versions)),
    h(
      'td',
      { title: d.updated_at_ms ? absoluteTime(d.updated_at_ms) : '' },
      d.updated_at_ms ? relativeTime(d.updated_at_ms) : '—'
    ),
    h(
      'td',
      {},
      d.online ? h('span.online-dot', { 'aria-hidden': 'true' }) : null,
      String(d.online),
      ...d.users.map((u) => h('span.user-chip', {}, u))
    )
  )
}
