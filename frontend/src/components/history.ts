// The editor's history panel: the document's versions (time, label, kind, who edited), a read-only
// preview of one (version-preview.ts), "Name this version" (name-version.ts) and "Restore" (then
// "Undo", which restores the version the server took just before). A restore is an ordinary edit
// on the server, so every open editor receives it live; open panels refresh their list every
// REFRESH_MS, soon after a change from elsewhere, and at once after a change made here.
import type { WebsocketProvider } from 'y-websocket'
import type * as Y from 'yjs'
import { ApiError, createVersion, listVersions, type Restored, restoreVersion, type Version } from '../api'
import { h } from '../dom'
import { closeIcon, historyIcon } from '../icons'
import { pageToken } from '../names'
import { NameVersion } from './name-version'
import { type PreviewHost, VersionPreview } from './version-preview'
import { versionRow, versionTime, versionTitle } from './version-view'

const REFRESH_MS = 10_000
/** After a change from another user: refresh the list once things have settled for this long. */
const REMOTE_SETTLE_MS = 1500
const REMOTE_MAX_WAIT_MS = 5000
const PAGE = 50
const MAX_LIMIT = 1000 // the API's largest page

export class HistoryPanel implements PreviewHost {
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
  private readonly naming = new NameVersion((label) => this.saveNamed(label))
  private readonly listView = h('div.history-list-view', {}, this.naming.el, this.list, this.listStatus, this.more)
  private readonly preview = new VersionPreview(this)
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
    this.preview.el
  )

  private versions: Version[] = []
  readonly known = new Map<number, Version>() // every version seen, to name restores' targets
  private cursor: string | null = null
  private listGeneration = 0 // bumped by every request for the list: older answers are dropped
  private timers = { poll: 0, remote: 0 }
  private remoteSince = 0 // when the first remote change not yet followed by a refresh came
  readonly token = pageToken()

  constructor(
    readonly name: string,
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
    this.remoteSince = 0
    this.back()
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
    const open = (chosen: Version): void => this.openVersion(chosen)
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
    this.preview.changed()
  }

  // ---- naming and preview ---------------------------------------------------------------------

  /** Save a named version; true when it was saved. */
  private async saveNamed(label: string | null): Promise<boolean> {
    try {
      const version = await createVersion(this.name, label, this.token)
      this.say(`Saved “${versionTitle(version)}”.`)
      await this.refresh()
      return true
    } catch (e) {
      this.fail(e, 'Could not save the version')
      return false
    }
  }

  private openVersion(version: Version): void {
    this.listView.hidden = true
    void this.preview.open(version)
  }

  /** From the preview back to the list, with the focus on the version that was shown. */
  back(): void {
    const was = this.preview.version
    this.preview.hide()
    this.listView.hidden = false
    if (was) this.list.querySelector<HTMLElement>(`li[data-id="${was.id}"] button`)?.focus()
  }

  // ---- restore --------------------------------------------------------------------------------

  restore(version: Version): void {
    void this.restoreNow(version)
  }

  private async restoreNow(version: Version): Promise<void> {
    try {
      const restored = await restoreVersion(this.name, version.id, this.token)
      this.back()
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

  fail(e: unknown, what: string): void {
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
      if (this.naming.isOpen) this.naming.stop()
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
