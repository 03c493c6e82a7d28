// Comments stored in the document itself (docs/comments.md): a root Y.Map 'comments', one Y.Map
// per comment by its id, anchored to the text by two Yjs relative positions, so a comment syncs,
// persists and comes back with a version like the text, and stays on its words through anyone's
// edits. This module is the only writer; the server only reads them (collab/comments.py).
import * as Y from 'yjs'

export const COMMENTS_ROOT = 'comments'

export interface Author {
  id: string
  name: string
  color: string
}

export interface Reply {
  id: string
  body: string
  author: string
  author_id: string
  color: string
  created_ms: number
}

export interface Thread {
  id: string
  body: string
  author: string
  authorId: string
  color: string
  createdMs: number
  resolved: boolean
  resolvedBy: string | null
  resolvedMs: number | null
  replies: Reply[]
  quote: string // the text as it was when commented on
  from: number // where its words are now (UTF-16, CodeMirror's positions)
  to: number
  detached: boolean // its words were deleted
}

const randomId = (prefix: string): string => {
  const bytes = new Uint8Array(8)
  crypto.getRandomValues(bytes)
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

const str = (v: unknown, fallback = ''): string => (typeof v === 'string' ? v : fallback)
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)

export class Comments {
  readonly map: Y.Map<Y.Map<unknown>>

  constructor(
    readonly ydoc: Y.Doc,
    readonly ytext: Y.Text,
    readonly field = 'codemirror'
  ) {
    this.map = ydoc.getMap(COMMENTS_ROOT)
  }

  /** Comment on the text between `from` and `to`; the new comment's id. */
  add(from: number, to: number, body: string, by: Author): string {
    const id = randomId('c')
    const start = Y.createRelativePositionFromTypeIndex(this.ytext, from, 0) // sticks to its first character
    const end = Y.createRelativePositionFromTypeIndex(this.ytext, to, -1) // and to its last
    this.ydoc.transact(() => {
      const c = new Y.Map<unknown>()
      c.set('field', this.field)
      c.set('start', Y.relativePositionToJSON(start))
      c.set('end', Y.relativePositionToJSON(end))
      c.set('quote', this.ytext.toString().slice(from, to))
      c.set('body', body)
      c.set('author', by.name)
      c.set('author_id', by.id)
      c.set('color', by.color)
      c.set('created_ms', Date.now())
      c.set('resolved', false)
      c.set('replies', new Y.Array<Reply>())
      this.map.set(id, c)
    })
    return id
  }

  reply(id: string, body: string, by: Author): void {
    const replies = this.map.get(id)?.get('replies')
    if (!(replies instanceof Y.Array)) return
    const reply: Reply = {
      id: randomId('r'),
      body,
      author: by.name,
      author_id: by.id,
      color: by.color,
      created_ms: Date.now()
    }
    replies.push([reply])
  }

  resolve(id: string, by: Author): void {
    const c = this.map.get(id)
    if (!c) return
    this.ydoc.transact(() => {
      c.set('resolved', true)
      c.set('resolved_by', by.name)
      c.set('resolved_ms', Date.now())
    })
  }

  reopen(id: string): void {
    this.map.get(id)?.set('resolved', false)
  }

  remove(id: string): void {
    this.map.delete(id)
  }

  /** Every comment, its anchor resolved against the text as it is now, in text order. */
  threads(): Thread[] {
    const out: Thread[] = []
    this.map.forEach((c, id) => {
      if (!(c instanceof Y.Map) || str(c.get('field'), this.field) !== this.field) return
      const from = this.position(c.get('start'))
      const to = Math.max(this.position(c.get('end')) ?? from ?? 0, from ?? 0)
      const replies = c.get('replies')
      const quote = str(c.get('quote'))
      out.push({
        id,
        body: str(c.get('body')),
        author: str(c.get('author'), 'Someone'),
        authorId: str(c.get('author_id')),
        color: str(c.get('color'), '#9aa2b0'),
        createdMs: num(c.get('created_ms')) ?? 0,
        resolved: c.get('resolved') === true,
        resolvedBy: typeof c.get('resolved_by') === 'string' ? str(c.get('resolved_by')) : null,
        resolvedMs: num(c.get('resolved_ms')),
        replies: replies instanceof Y.Array ? (replies.toArray() as Reply[]) : [],
        quote,
        from: from ?? 0,
        to,
        detached: from === null || (to === from && quote.length > 0)
      })
    })
    return out.sort((a, b) => a.from - b.from || a.createdMs - b.createdMs)
  }

  private position(json: unknown): number | null {
    if (!json || typeof json !== 'object') return null
    const abs = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(json), this.ydoc)
    return abs && abs.type === this.ytext ? abs.index : null
  }
}
