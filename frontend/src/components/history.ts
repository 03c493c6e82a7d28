// The editor's history panel: the document's versions (time, label, kind, who edited), a read-only
// preview of one with its changes since then marked, "Name this version" and "Restore" (then
// "Undo", which restores the version taken just before). A restore is an ordinary edit on the
// server, so every open editor receives it live; open panels refresh their list every
// REFRESH_MS, soon after a change from elsewhere, and at once after a change made here.
import type { WebsocketProvider } from 'y-websocket'
import type * as Y from 'yjs'
import {
  ApiError,
  createVersion,
  diffVersion,
  getVersion,
  listVersions,
  type Restored,
  restoreVersion,
  type Version
} from '../api'
import { append, h } from '../dom'
import { plural } from '../format'
import { backIcon, closeIcon, historyIcon } from '../icons'
import { pageToken } from '../names'
import {
  authorChips,
  countChanges,
  fullTime,
  renderContent,
  renderDiff,
  versionRow,
  versionTime,
  versionTitle
} from './version-view'

const REFRESH_MS = 10_000
/** After a change from another user: refresh the list once things have settled for this long. */
const REMOTE_SETTLE_MS = 1500
const REMOTE_MAX_WAIT_MS = 5000
/** After any change: refresh an open "changes since" preview once typing pauses this long. */
const PREVIEW_SETTLE_MS = 800
const PAGE = 50
const MAX_LIMIT = 1000 // the API's largest page
const MAX_LABEL = 200

type PreviewMode = 'changes' | 'version'

export class HistoryPanel {
  readonly button = h(
    'button.btn.ghost.history-button',
    {
      type: 'button',
      title: 'Version history',
      'aria-controls': 'history-panel',
      'aria-expanded': 'false',
      'data-testid': 'history-button'
    },
    historyIcon(),
    h('span.history-label', {}, 'History')
  )
  private readonly heading = h('h2.history-heading', { tabIndex: -1 }, 'History')
  private readonly notice = h('div.history-notice', { role: 'status', 'data-testid': 'history-notice', hidden: true })
  private readonly error = h('div.history-error', { role: 'alert', 'data-testid': 'history-error', hidden: true })
  private readonly list = h('ol.version-list', { 'data-testid': 'version-list', 'aria-label': 'Versions' })
  private readonly listStatus = h('p.version-status')
  private readonly more = h('button.btn.ghost.btn-block.version-more', { type: 'button', hidden: true }, 'Show older')
  private readonly nameForm = this.buildNameForm()
  private readonly nameButton = h(
    'button.btn.primary.btn-block',
    { type: 'button', 'data-testid': 'name-version', onclick: () => this.startNaming() },
    'Name this version'
  )
  private readonly listView = h(
    'div.history-list-view',
    {},
    this.nameButton,
    this.nameForm,
    this.list,
    this.listStatus,
    this.more
  )
  private readonly preview = h('section.version-preview', { 'data-testid': 'version-preview', hidden: true })
  readonly el = h(
    'aside#history-panel.history',
    { 'aria-labelledby': 'history-heading', 'data-testid': 'history-panel', hidden: true },
    h(
      'div.history-head',
      {},
      this.heading,
      h(
        'button.icon-button',
        { type: 'button', 'aria-label': 'Close history', title: 'Close (Esc)', onclick: () => this.close() },
        closeIcon()
      )
    ),
    this.notice,
    this.error,
    this.listView,
    this.preview
  )

  private versions: Version[] = []
  private readonly known = new Map<number, Version>() // every version seen, to name restores' targets
  private cursor: string | null = null
  private shown: Version | null = null // the version in the preview
  private mode: PreviewMode = 'changes'
  // Bumped by every request for the list / for the preview: answers to older ones are dropped.
  private listGeneration = 0
  private previewGeneration = 0
  private timers = { poll: 0, remote: 0, preview: 0 }
  private remoteSince = 0 // when the first remote change not yet followed by a refresh came
  private readonly token = pageToken()

  constructor(
    private readonly name: string,
    ydoc: Y.Doc,
    provider: WebsocketProvider
  ) {
    this.heading.id = 'history-heading'
    this.button.addEventListener('click', () => (this.isOpen ? this.close() : this.open()))
    this.more.addEventListener('click', () => void this.loadMore())
    this.el.addEventListener('keydown', (e) => this.onKey(e as KeyboardEvent))
    ydoc.on('update', (_update: Uint8Array, origin: unknown) => this.changed(origin === provider))
    document.addEventListener('visibilitychange', () => {
      if (this.isOpen && document.visibilityState === 'visible') void this.refresh()
    })
  }

  get isOpen(): boolean {
    return !this.el.hidden
  }

  open(): void {
    if (this.isOpen) return
    this.el.hidden = false
    document.body.classList.add('history-open')
    this.button.setAttribute('aria-expanded', 'true')
    this.heading.focus()
    void this.refresh()
    this.timers.poll = window.setInterval(() => {
      if (document.visibilityState === 'visible') void this.refresh()
    }, REFRESH_MS)
  }

  close(): void {
    if (!this.isOpen) return
    this.el.hidden = true
    document.body.classList.remove('history-open')
    this.button.setAttribute('aria-expanded', 'false')
    window.clearInterval(this.timers.poll)
    window.clearTimeout(this.timers.remote)
    window.clearTimeout(this.timers.preview)
    this.remoteSince = 0
    this.showList()
    this.button.focus()
  }

  /** The newest versions again, and below them the older ones already shown (so a refresh never
   * takes away what the user paged to; a version thinned by retention there goes on the next
   * open). */
  async refresh(): Promise<void> {
    const generation = ++this.listGeneration
    const limit = Math.min(MAX_LIMIT, Math.max(PAGE, this.versions.length))
    try {
      const page = await listVersions(this.name, this.token, { limit })
      if (generation !== this.listGeneration) return
      const oldest = page.versions.length ? Math.min(...page.versions.map((v) => v.id)) : 0
      const older = this.versions.filter((v) => v.id < oldest)
      this.versions = [...page.versions, ...older]
      this.cursor = older.length ? this.cursor : page.next_cursor
      this.renderList()
      this.say('')
    } catch (e) {
      if (generation === this.listGeneration) this.fail(e, 'Could not load the versions')
    }
  }

  private async loadMore(): Promise<void> {
    if (!this.cursor) return
    const generation = ++this.listGeneration
    try {
      const page = await listVersions(this.name, this.token, { limit: PAGE, cursor: this.cursor })
      if (generation !== this.listGeneration) return
      this.versions = [...this.versions, ...page.versions]
      this.cursor = page.next_cursor
      this.renderList()
    } catch (e) {
      this.fail(e, 'Could not load older versions')
    }
  }

  private renderList(): void {
    const focused = (document.activeElement as HTMLElement | null)?.closest('li')?.dataset.id
    for (const v of this.versions) this.known.set(v.id, v)
    const open = (chosen: Version): void => void this.openVersion(chosen)
    this.list.replaceChildren(...this.versions.map((v) => versionRow(v, this.known, open)))
    this.listStatus.textContent = this.versions.length
      ? ''
      : 'No versions yet. One is saved automatically after a pause in editing, or name this version now.'
    this.listStatus.hidden = this.versions.length > 0
    this.more.hidden = this.cursor === null
    if (focused) this.list.querySelector<HTMLElement>(`li[data-id="${focused}"] button`)?.focus()
  }

  /** A change to the document: refresh what depends on "now". */
  private changed(remote: boolean): void {
    if (!this.isOpen) return
    if (remote) {
      // Once the other people pause (an automatic version is likely then), but at least every
      // REMOTE_MAX_WAIT_MS while they keep typing.
      const now = Date.now()
      if (!this.remoteSince) this.remoteSince = now
      window.clearTimeout(this.timers.remote)
      const wait = Math.min(REMOTE_SETTLE_MS, Math.max(0, this.remoteSince + REMOTE_MAX_WAIT_MS - now))
      this.timers.remote = window.setTimeout(() => {
        this.remoteSince = 0
        void this.refresh()
      }, wait)
    }
    if (this.shown && this.mode === 'changes') {
      window.clearTimeout(this.timers.preview)
      this.timers.preview = window.setTimeout(() => void this.loadPreview(), PREVIEW_SETTLE_MS)
    }
  }

  // ---- naming ---------------------------------------------------------------------------------

  private buildNameForm(): HTMLFormElement {
    const input = h('input.input', {
      type: 'text',
      maxLength: MAX_LABEL,
      placeholder: 'e.g. Sent to the client',
      'aria-label': 'Version name',
      'data-testid': 'version-label'
    })
    const form = h(
      'form.history-name-form',
      {
        hidden: true,
        onsubmit: (e: Event) => {
          e.preventDefault()
          void this.saveName(input.value.trim())
        }
      },
      h('label.form-label', {}, 'Name this version'),
      h('p.form-help', {}, 'Saves the document as it is now, under this name.'),
      input,
      h(
        'div.form-actions',
        {},
        h('button.btn.ghost', { type: 'button', onclick: () => this.stopNaming() }, 'Cancel'),
        h('button.btn.primary', { type: 'submit', 'data-testid': 'save-version' }, 'Save version')
      )
    )
    return form
  }

  private startNaming(): void {
    this.nameForm.hidden = false
    this.nameButton.hidden = true
    const input = this.nameForm.querySelector('input') as HTMLInputElement
    input.value = ''
    input.focus()
  }

  private stopNaming(): void {
    this.nameForm.hidden = true
    this.nameButton.hidden = false
    this.nameButton.focus()
  }

  private async saveName(label: string): Promise<void> {
    const submit = this.nameForm.querySelector('button[type=submit]') as HTMLButtonElement
    submit.disabled = true
    try {
      const version = await createVersion(this.name, label || null, this.token)
      this.stopNaming()
      this.say(`Saved “${versionTitle(version)}”.`)
      await this.refresh()
    } catch (e) {
      this.fail(e, 'Could not save the version')
    } finally {
      submit.disabled = false
    }
  }

  // ---- preview --------------------------------------------------------------------------------

  private async openVersion(version: Version): Promise<void> {
    this.shown = version
    this.mode = 'changes'
    this.listView.hidden = true
    this.preview.hidden = false
    this.renderPreviewFrame(version, h('p.preview-loading', {}, 'Loading…'))
    ;(this.preview.querySelector('.preview-back') as HTMLElement).focus()
    await this.loadPreview()
  }

  private showList(): void {
    const was = this.shown
    this.shown = null
    this.preview.hidden = true
    this.preview.replaceChildren()
    this.listView.hidden = false
    if (was) this.list.querySelector<HTMLElement>(`li[data-id="${was.id}"] button`)?.focus()
  }

  private async loadPreview(): Promise<void> {
    const version = this.shown
    if (!version) return
    const generation = ++this.previewGeneration
    try {
      if (this.mode === 'changes') {
        const diff = await diffVersion(this.name, version.id, null, this.token)
        if (generation !== this.previewGeneration || this.shown !== version) return
        const { inserted, deleted } = countChanges(diff.fields)
        const same = inserted === 0 && deleted === 0
        const summary = same
          ? 'No changes to the text since this version.'
          : `Since this version: ${plural(inserted, 'character', 'characters')} added, ${deleted} removed.`
        this.renderPreviewFrame(version, renderDiff(diff.fields), summary, same)
      } else {
        const answer = await getVersion(this.name, version.id, this.token)
        if (generation !== this.previewGeneration || this.shown !== version) return
        this.renderPreviewFrame(version, renderContent(answer.content, answer.types), 'The document as it was.')
      }
    } catch (e) {
      if (generation === this.previewGeneration) this.fail(e, 'Could not load this version')
    }
  }

  /** The preview around `body`: back, title, the two views, summary and legend, Restore. */
  private renderPreviewFrame(version: Version, body: HTMLElement, summary = '', same = false): void {
    const hadFocus = this.preview.contains(document.activeElement)
      ? (document.activeElement as HTMLElement).dataset.focusKey
      : undefined
    const tab = (mode: PreviewMode, label: string): HTMLButtonElement =>
      h(
        'button.segment',
        {
          type: 'button',
          'aria-pressed': String(this.mode === mode),
          'data-focus-key': `mode-${mode}`,
          onclick: () => {
            if (this.mode === mode) return
            this.mode = mode
            void this.loadPreview()
          }
        },
        label
      )
    const restore = h(
      'button.btn.primary',
      {
        type: 'button',
        'data-testid': 'restore-version',
        'data-focus-key': 'restore',
        disabled: same,
        title: same ? 'The text is the same as now' : 'Make the document look like this version again',
        onclick: () => void this.restore(version)
      },
      'Restore this version'
    )
    this.preview.replaceChildren()
    append(
      this.preview,
      h(
        'div.preview-head',
        {},
        h(
          'button.btn.ghost.preview-back',
          { type: 'button', 'data-focus-key': 'back', onclick: () => this.showList() },
          backIcon(),
          'All versions'
        ),
        h('h3.preview-title', { 'data-testid': 'preview-title' }, versionTitle(version, this.known)),
        h(
          'p.preview-meta',
          {},
          h('time', { title: fullTime(version.created_at_ms) }, versionTime(version.created_at_ms)),
          authorChips(version.authors)
        )
      ),
      h(
        'div.segments',
        { role: 'group', 'aria-label': 'Show' },
        tab('changes', 'Changes since'),
        tab('version', 'As it was')
      ),
      summary ? h('p.preview-summary', { 'data-testid': 'preview-summary' }, summary) : null,
      this.mode === 'changes' && !same && summary
        ? h(
            'p.preview-legend',
            {},
            h('ins.diff-insert', {}, 'added since'),
            ' ',
            h('del.diff-delete', {}, 'removed since')
          )
        : null,
      h('div.preview-body', { 'data-testid': 'preview-body', 'aria-label': 'Read-only preview' }, body),
      h('div.preview-actions', {}, restore)
    )
    if (hadFocus) this.preview.querySelector<HTMLElement>(`[data-focus-key="${hadFocus}"]`)?.focus()
  }

  // ---- restore --------------------------------------------------------------------------------

  private async restore(version: Version): Promise<void> {
    try {
      const restored = await restoreVersion(this.name, version.id, this.token)
      this.showList()
      this.sayRestored(version, restored)
      await this.refresh()
    } catch (e) {
      this.fail(e, 'Could not restore this version')
    }
  }

  private sayRestored(version: Version, restored: Restored): void {
    const undo = h(
      'button.btn.link',
      {
        type: 'button',
        'data-testid': 'undo-restore',
        onclick: () => void this.undo(restored.before)
      },
      'Undo'
    )
    this.show(this.notice, h('span', {}, `Restored ${restoredWhat(version)} — everyone editing sees it now.`), undo)
    undo.focus()
  }

  private async undo(before: Version): Promise<void> {
    try {
      await restoreVersion(this.name, before.id, this.token)
      this.say('Undone — the document is back as it was before the restore.')
      await this.refresh()
    } catch (e) {
      this.fail(e, 'Could not undo the restore')
    }
  }

  // ---- messages and keys ----------------------------------------------------------------------

  private say(message: string): void {
    if (message) this.show(this.notice, message)
    this.error.hidden = true
  }

  private fail(e: unknown, what: string): void {
    const why =
      e instanceof ApiError
        ? e.status === 403
          ? 'your access to this document does not allow it.'
          : e.status === 401
            ? 'this page needs a valid access link.'
            : e.status === 404
              ? 'it no longer exists.'
              : e.message
        : 'the server could not be reached.'
    this.show(this.error, `${what}: ${why}`)
  }

  private show(el: HTMLElement, ...content: Array<string | Node>): void {
    el.replaceChildren(...content)
    el.hidden = false
    if (el === this.notice) this.error.hidden = true
  }

  private onKey(e: KeyboardEvent): void {
    if (e.key === 'Escape' && !e.defaultPrevented) {
      e.preventDefault()
      if (!this.nameForm.hidden) this.stopNaming()
      else this.close()
      return
    }
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return
    const items = [...this.list.querySelectorAll<HTMLButtonElement>('button.version-item')]
    const at = items.indexOf(document.activeElement as HTMLButtonElement)
    if (at < 0) return
    e.preventDefault()
    items[Math.max(0, Math.min(items.length - 1, at + (e.key === 'ArrowDown' ? 1 : -1)))].focus()
  }
}

function restoredWhat(version: Version): string {
  return version.label && version.kind !== 'restore'
    ? `“${version.label}”`
    : `the version of ${versionTime(version.created_at_ms)}`
}
