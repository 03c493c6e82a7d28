// The start page's documents: the most recently edited first, narrowed to the names that contain
// what is typed in the form, and a status line for loading, errors and empty results.
import type { DocumentInfo } from '../api'
import { h } from '../dom'
import { absoluteTime, byteSize, plural, relativeTime } from '../format'
import { docIcon } from '../icons'
import { editorPath, withToken } from '../names'

/** What the page knows: the documents (null until listed, or when listing is refused) and why
 * the list is missing or stale ('' when all is well). */
export interface Listing {
  docs: DocumentInfo[] | null
  error: string
}

export class DocumentList {
  private readonly list = h('ul.doc-list', { 'data-testid': 'doc-list' })
  private readonly count = h('span.count')
  private readonly status = h('div.list-status')
  readonly el = h(
    'section.docs',
    { 'aria-labelledby': 'docs-heading' },
    h('div.section-head', {}, h('h2#docs-heading', {}, 'Documents'), this.count),
    h(
      'div.doc-columns',
      { 'aria-hidden': 'true' },
      h('span', {}, 'Name'),
      h('span', {}, 'Last edited'),
      h('span.num', {}, 'Size'),
      h('span.num', {}, 'Online')
    ),
    this.list,
    this.status
  )

  /** Show `listing`, only the documents whose name contains `query` (any case). */
  show({ docs, error }: Listing, query: string): void {
    if (docs === null) {
      this.status.textContent = error || 'Loading documents…'
      this.status.hidden = false
      this.list.replaceChildren()
      this.count.textContent = ''
      return
    }
    const filter = query.toLowerCase()
    const shown = docs
      .filter((d) => !filter || d.name.toLowerCase().includes(filter))
      .sort((a, b) => b.updated_at_ms - a.updated_at_ms)
    this.count.textContent = String(docs.length)
    this.list.replaceChildren(...shown.map(row))
    this.status.hidden = shown.length > 0 && !error
    this.status.textContent = error
      ? error
      : docs.length === 0
        ? 'No documents yet. Name one above to start writing.'
        : shown.length === 0
          ? `No document matches “${query}”. Press Enter to create it.`
          : ''
  }
}

function row(doc: DocumentInfo): HTMLLIElement {
  return h(
    'li',
    { 'data-name': doc.name },
    h(
      'a.doc-row',
      { href: withToken(editorPath(doc.name)) },
      h('span.doc-name', {}, docIcon(), h('span.doc-name-text', { title: doc.name }, doc.name)),
      h('span.doc-edited', { title: absoluteTime(doc.updated_at_ms) }, relativeTime(doc.updated_at_ms)),
      h('span.doc-size.num', {}, byteSize(doc.size_bytes)),
      h('span.doc-online.num', {}, onlineBadge(doc.online))
    )
  )
}

function onlineBadge(online: number): HTMLSpanElement {
  if (online <= 0) return h('span.muted', {}, '—')
  return h(
    'span.online-badge',
    { title: `${plural(online, 'connection', 'connections')} now` },
    h('span.live-dot'),
    `${online} online`
  )
}
