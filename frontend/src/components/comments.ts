// The editor's Comments button and side panel: a new comment's form (the selected words, a
// text box), the open threads in text order (their words, the comment, replies, a reply box,
// Resolve, Delete for its author) and the resolved ones folded below (Reopen). Everything is
// read from and written to the document (comments.ts), so every open editor shows the same.
import type { EditorView } from '@codemirror/view'
import type { Author, Comments, Thread } from '../comments'
import { showComments } from '../comments-editor'
import { h } from '../dom'
import { absoluteTime, relativeTime } from '../format'
import { closeIcon, commentIcon } from '../icons'
import { avatar } from '../ui'

export class CommentsPanel {
  private readonly count = h('span.comments-count', { 'data-testid': 'comments-count' })
  readonly button = h(
    'button.btn.ghost.comments-button',
    {
      type: 'button',
      title: 'Comments',
      'aria-controls': 'comments-panel',
      'aria-expanded': 'false',
      'data-testid': 'comments-button'
    },
    commentIcon(),
    h('span.comments-label', {}, 'Comments'),
    this.count
  )
  private readonly heading = h('h2.comments-heading', { tabIndex: -1, id: 'comments-heading' }, 'Comments')
  private readonly composer = h('form.comment-composer', { 'data-testid': 'comment-composer', hidden: true })
  private readonly list = h('ol.comment-list', { 'data-testid': 'comment-list', 'aria-label': 'Open comments' })
  private readonly empty = h('p.comment-empty', {}, 'No comments yet. Select some text and press “Comment”.')
  private readonly resolvedList = h('ol.comment-list', { 'data-testid': 'resolved-list' })
  private readonly resolvedSummary = h('summary', {}, 'Resolved')
  private readonly resolved = h('details.comment-resolved', { hidden: true }, this.resolvedSummary, this.resolvedList)
  readonly el = h(
    'aside#comments-panel.comments',
    { 'aria-labelledby': 'comments-heading', 'data-testid': 'comments-panel', hidden: true },
    h(
      'div.comments-head',
      {},
      this.heading,
      h(
        'button.icon-button',
        { type: 'button', 'aria-label': 'Close comments', title: 'Close (Esc)', onclick: () => this.close() },
        closeIcon()
      )
    ),
    this.composer,
    this.list,
    this.empty,
    this.resolved
  )
  private threads: Thread[] = []
  private active: string | null = null
  private drafts = new Map<string, string>() // reply boxes' text by thread, kept across renders
  private pending = false
  /** Called when the panel opens (the page closes the other side panel). */
  onOpen: () => void = () => {}

  constructor(
    readonly comments: Comments,
    readonly view: EditorView,
    readonly me: () => Author,
    readonly canComment: () => boolean
  ) {
    this.button.addEventListener('click', () => (this.isOpen ? this.close() : this.open()))
    this.el.addEventListener('keydown', (e) => {
      if ((e as KeyboardEvent).key === 'Escape') this.close()
    })
    comments.ydoc.on('update', () => this.schedule())
    this.render()
  }

  get isOpen(): boolean {
    return !this.el.hidden
  }

  open(): void {
    if (this.isOpen) return
    this.onOpen()
    this.el.hidden = false
    document.body.classList.add('comments-open')
    this.button.setAttribute('aria-expanded', 'true')
  }

  close(): void {
    if (!this.isOpen) return
    this.el.hidden = true
    document.body.classList.remove('comments-open')
    this.button.setAttribute('aria-expanded', 'false')
    this.composer.hidden = true
    this.setActive(null)
  }

  /** The form for a new comment on from..to. */
  compose(from: number, to: number): void {
    this.open()
    const quote = this.view.state.sliceDoc(from, to)
    const body = h('textarea.comment-input', {
      rows: 3,
      placeholder: 'Add a comment…',
      'aria-label': 'Comment',
      'data-testid': 'comment-input'
    })
    const submit = (): void => {
      const text = body.value.trim()
      if (!text) return
      const id = this.comments.add(from, to, text, this.me())
      this.composer.hidden = true
      this.setActive(id)
      this.view.dispatch({ selection: { anchor: Math.min(to, this.view.state.doc.length) } })
      this.view.focus()
    }
    this.composer.onsubmit = (e) => {
      e.preventDefault()
      submit()
    }
    body.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) submit()
      if (e.key === 'Escape') {
        e.stopPropagation()
        this.cancelCompose()
      }
    })
    this.composer.replaceChildren(
      h('blockquote.comment-quote', {}, quote),
      body,
      h(
        'div.comment-actions',
        {},
        h('button.btn.ghost', { type: 'button', onclick: () => this.cancelCompose() }, 'Cancel'),
        h('button.btn.primary', { type: 'submit', 'data-testid': 'comment-submit' }, 'Comment')
      )
    )
    this.composer.hidden = false
    body.focus()
  }

  private cancelCompose(): void {
    this.composer.hidden = true
    this.view.focus()
  }

  /** Threads whose words were clicked: open the panel on the first. */
  reveal(ids: string[]): void {
    this.open()
    this.setActive(ids[0])
    this.list.querySelector(`li[data-id="${ids[0]}"]`)?.scrollIntoView({ block: 'nearest' })
  }

  private setActive(id: string | null): void {
    this.active = id
    this.render()
  }

  private schedule(): void {
    if (this.pending) return
    this.pending = true
    queueMicrotask(() => {
      // after the Yjs transaction and y-codemirror's own dispatch: never dispatch inside one
      this.pending = false
      this.render()
    })
  }

  private render(): void {
    this.threads = this.comments.threads()
    showComments(this.view, this.threads, this.isOpen ? this.active : null)
    const open = this.threads.filter((t) => !t.resolved)
    const done = this.threads.filter((t) => t.resolved)
    this.count.textContent = open.length ? String(open.length) : ''
    const focused = document.activeElement as HTMLElement | null
    const focusedReply = focused?.dataset.replyFor
    this.list.replaceChildren(...open.map((t) => this.card(t)))
    this.resolvedList.replaceChildren(...done.map((t) => this.card(t)))
    this.empty.hidden = open.length > 0
    this.empty.textContent = this.threads.length
      ? 'No open comments.'
      : 'No comments yet. Select some text and press “Comment”.'
    this.resolved.hidden = done.length === 0
    this.resolvedSummary.textContent = `Resolved (${done.length})`
    if (focusedReply) {
      const box = this.el.querySelector<HTMLTextAreaElement>(`textarea[data-reply-for="${focusedReply}"]`)
      box?.focus()
      box?.setSelectionRange(box.value.length, box.value.length)
    }
  }

  private card(t: Thread): HTMLLIElement {
    const mine = t.authorId === this.me().id
    const now = this.view.state.sliceDoc(t.from, t.to)
    const quote = t.detached
      ? h('blockquote.comment-quote.detached', { title: 'This text was deleted' }, t.quote)
      : h('blockquote.comment-quote', {}, now)
    const actions = h('div.comment-actions')
    if (this.canComment()) {
      if (t.resolved) {
        actions.append(this.action('Reopen', 'comment-reopen', () => this.comments.reopen(t.id)))
      } else {
        actions.append(this.action('Resolve', 'comment-resolve', () => this.comments.resolve(t.id, this.me())))
      }
      if (mine) actions.append(this.action('Delete', 'comment-delete', () => this.comments.remove(t.id)))
    }
    const li = h(
      'li.comment-thread',
      {
        'data-id': t.id,
        'data-testid': 'comment-thread',
        'data-active': t.id === this.active ? 'true' : undefined,
        onclick: (e: Event) => this.select(e, t)
      },
      h(
        'div.comment-meta',
        {},
        avatar({ name: t.author, color: t.color, me: mine }, 'sm'),
        h('strong.comment-author', {}, t.author),
        h('time.comment-time', { title: absoluteTime(t.createdMs) }, relativeTime(t.createdMs))
      ),
      quote,
      h('p.comment-body', { 'data-testid': 'comment-body' }, t.body),
      t.replies.length
        ? h(
            'ol.comment-replies',
            {},
            ...t.replies.map((r) =>
              h(
                'li.comment-reply',
                { 'data-testid': 'comment-reply' },
                h(
                  'div.comment-meta',
                  {},
                  avatar({ name: r.author, color: r.color, me: r.author_id === this.me().id }, 'sm'),
                  h('strong.comment-author', {}, r.author),
                  h('time.comment-time', { title: absoluteTime(r.created_ms) }, relativeTime(r.created_ms))
                ),
                h('p.comment-body', {}, r.body)
              )
            )
          )
        : null,
      t.resolved
        ? h(
            'p.comment-status',
            { 'data-testid': 'comment-status' },
            `Resolved${t.resolvedBy ? ` by ${t.resolvedBy}` : ''}`
          )
        : null,
      !t.resolved && this.canComment() ? this.replyBox(t) : null,
      actions
    )
    return li
  }

  private replyBox(t: Thread): HTMLFormElement {
    const box = h('textarea.comment-input.reply-input', {
      rows: 1,
      placeholder: 'Reply…',
      'aria-label': `Reply to ${t.author}`,
      'data-testid': 'reply-input',
      'data-reply-for': t.id,
      value: this.drafts.get(t.id) ?? ''
    })
    box.addEventListener('input', () => this.drafts.set(t.id, box.value))
    const send = (): void => {
      const text = box.value.trim()
      if (!text) return
      this.drafts.delete(t.id)
      this.comments.reply(t.id, text, this.me())
    }
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) send()
    })
    return h(
      'form.comment-reply-form',
      {
        onsubmit: (e: Event) => {
          e.preventDefault()
          send()
        }
      },
      box,
      h('button.btn.ghost.reply-send', { type: 'submit', 'data-testid': 'reply-submit' }, 'Reply')
    )
  }

  private action(label: string, testid: string, run: () => void): HTMLButtonElement {
    return h(
      'button.btn.link.comment-action',
      {
        type: 'button',
        'data-testid': testid,
        onclick: (e: Event) => {
          e.stopPropagation()
          run()
        }
      },
      label
    )
  }

  /** A click on a thread: select its words in the editor. */
  private select(e: Event, t: Thread): void {
    if ((e.target as HTMLElement).closest('button, textarea, form')) return
    this.setActive(t.id)
    if (!t.detached) {
      this.view.dispatch({ selection: { anchor: t.from, head: t.to }, scrollIntoView: true })
    }
  }
}
