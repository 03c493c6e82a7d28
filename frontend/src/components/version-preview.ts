// The history panel's preview of one version, read-only: "Changes since" (the diff from it to the
// document now, fetched again after edits while shown) or "As it was" (its content), and the
// Restore button. The panel owns the list and what a restore does; this owns what is shown.
import { diffVersion, getVersion, type Version } from '../api'
import { append, h } from '../dom'
import { plural } from '../format'
import { backIcon } from '../icons'
import {
  authorChips,
  countChanges,
  fullTime,
  type Known,
  renderContent,
  renderDiff,
  versionTime,
  versionTitle
} from './version-view'

/** After an edit: fetch the changes since the shown version again once typing pauses this long. */
const SETTLE_MS = 800

type Mode = 'changes' | 'version'

/** What the preview needs from its panel. */
export interface PreviewHost {
  readonly name: string
  readonly token: string | null
  readonly known: Known
  back(): void
  restore(version: Version): void
  fail(error: unknown, what: string): void
}

export class VersionPreview {
  readonly el = h('section.version-preview', { 'data-testid': 'version-preview', hidden: true })
  private shown: Version | null = null
  private mode: Mode = 'changes'
  private generation = 0 // bumped by every request: answers to older ones are dropped
  private timer = 0

  constructor(private readonly host: PreviewHost) {}

  /** The version shown, or null when hidden. */
  get version(): Version | null {
    return this.shown
  }

  async open(version: Version): Promise<void> {
    this.shown = version
    this.mode = 'changes'
    this.el.hidden = false
    this.render(version, h('p.preview-loading', {}, 'Loading…'))
    ;(this.el.querySelector('.preview-back') as HTMLElement).focus()
    await this.load()
  }

  hide(): void {
    this.shown = null
    window.clearTimeout(this.timer)
    this.el.hidden = true
    this.el.replaceChildren()
  }

  /** The document changed: "changes since" is out of date. */
  changed(): void {
    if (!this.shown || this.mode !== 'changes') return
    window.clearTimeout(this.timer)
    this.timer = window.setTimeout(() => void this.load(), SETTLE_MS)
  }

  private async load(): Promise<void> {
    const version = this.shown
    if (!version) return
    const generation = ++this.generation
    const current = (): boolean => generation === this.generation && this.shown === version
    const { name, token } = this.host
    try {
      if (this.mode === 'changes') {
        const diff = await diffVersion(name, version.id, null, token)
        if (!current()) return
        const { inserted, deleted } = countChanges(diff.fields)
        const same = inserted === 0 && deleted === 0
        const summary = same
          ? 'No changes to the text since this version.'
          : `Since this version: ${plural(inserted, 'character', 'characters')} added, ${deleted} removed.`
        this.render(version, renderDiff(diff.fields), summary, same)
      } else {
        const answer = await getVersion(name, version.id, token)
        if (!current()) return
        this.render(version, renderContent(answer.content, answer.types), 'The document as it was.')
      }
    } catch (e) {
      if (current()) this.host.fail(e, 'Could not load this version')
    }
  }

  /** Back, title, the two views, summary and legend, `body`, Restore (keeping the focus). */
  private render(version: Version, body: HTMLElement, summary = '', same = false): void {
    const focused = this.el.contains(document.activeElement)
      ? (document.activeElement as HTMLElement).dataset.focusKey
      : undefined
    this.el.replaceChildren()
    append(
      this.el,
      h(
        'div.preview-head',
        {},
        h(
          'button.btn.ghost.preview-back',
          { type: 'button', 'data-focus-key': 'back', onclick: () => this.host.back() },
          backIcon(),
          'All versions'
        ),
        h('h3.preview-title', { 'data-testid': 'preview-title' }, versionTitle(version, this.host.known)),
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
        this.modeButton('changes', 'Changes since'),
        this.modeButton('version', 'As it was')
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
      h('div.preview-actions', {}, this.restoreButton(version, same))
    )
    if (focused) this.el.querySelector<HTMLElement>(`[data-focus-key="${focused}"]`)?.focus()
  }

  private modeButton(mode: Mode, label: string): HTMLButtonElement {
    return h(
      'button.segment',
      {
        type: 'button',
        'aria-pressed': String(this.mode === mode),
        'data-focus-key': `mode-${mode}`,
        onclick: () => {
          if (this.mode === mode) return
          this.mode = mode
          void this.load()
        }
      },
      label
    )
  }

  /** Disabled when the text is the same as now (the editor edits only text). */
  private restoreButton(version: Version, same: boolean): HTMLButtonElement {
    return h(
      'button.btn.primary',
      {
        type: 'button',
        'data-testid': 'restore-version',
        'data-focus-key': 'restore',
        disabled: same,
        title: same ? 'The text is the same as now' : 'Make the document look like this version again',
        onclick: () => this.host.restore(version)
      },
      'Restore this version'
    )
  }
}
