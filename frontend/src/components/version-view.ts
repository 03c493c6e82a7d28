// How the history panel shows one version: its title, time and authors (for the list), and its
// text, either as it was or with the changes since then marked (insertions and deletions, each
// underlined in its author's colour). Pure rendering: no requests, no state.
import type { DiffSegment, RootType, Version } from '../api'
import { h } from '../dom'
import { byteSize, relativeTime } from '../format'
import { colorFor } from '../user'

/** The text field the editor binds (pages/editor.ts): shown first, without a heading. */
export const EDITOR_FIELD = 'codemirror'

/** Unchanged runs longer than this many lines are folded down to their edges. */
const FOLD_LINES = 8
const CONTEXT_LINES = 3

/** Versions by id, to name the one a restore refers to. */
export type Known = ReadonlyMap<number, Version>

/** A version's title: its label, with "version N" in a restore's label (the server's wording)
 * replaced by that version's own title when it is known. */
export function versionTitle(version: Version, known: Known = new Map()): string {
  const restore = version.kind === 'restore' && version.label?.match(/^(Before restoring|Restored) version (\d+)$/)
  if (restore) {
    const target = known.get(Number(restore[2]))
    if (target) {
      const what =
        target.label && target.kind !== 'restore'
          ? `“${target.label}”`
          : `the version of ${versionTime(target.created_at_ms)}`
      return `${restore[1]} ${what}`
    }
  }
  if (version.label) return version.label
  if (version.kind === 'named') return 'Named version'
  if (version.kind === 'restore') return 'Restore'
  return 'Saved automatically'
}

export const KIND_LABEL: Record<Version['kind'], string> = { auto: 'auto', named: 'named', restore: 'restore' }

/** "14:05" today, "6 Dec 2026, 14:05" on another day. */
export function versionTime(ms: number, now = new Date()): string {
  const at = new Date(ms)
  if (at.toDateString() === now.toDateString()) {
    return at.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
  }
  return at.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}

export function fullTime(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'medium' })
}

/** The people who edited, as small coloured chips ("api" and other ids as they are). */
export function authorChips(authors: readonly string[]): HTMLElement | null {
  if (authors.length === 0) return null
  return h(
    'span.version-authors',
    { 'data-testid': 'version-authors' },
    ...authors.map((author) =>
      h(
        'span.author-chip',
        { 'data-author': author, title: `Edited by ${author}` },
        h('span.author-dot', { style: { backgroundColor: colorFor(author) } }),
        author
      )
    )
  )
}

/** One row of the list: a button (the whole row) that opens the version. */
export function versionRow(version: Version, known: Known, onOpen: (version: Version) => void): HTMLLIElement {
  const time = h(
    'time.version-time',
    {
      dateTime: new Date(version.created_at_ms).toISOString(),
      title: `${fullTime(version.created_at_ms)} · ${byteSize(version.size_bytes)}`
    },
    versionTime(version.created_at_ms),
    h('span.version-ago', {}, ` · ${relativeTime(version.created_at_ms)}`)
  )
  const button = h(
    'button.version-item',
    {
      type: 'button',
      'data-id': String(version.id),
      'data-kind': version.kind,
      onclick: () => onOpen(version)
    },
    h(
      'span.version-line',
      {},
      h('span.version-title', {}, versionTitle(version, known)),
      h(`span.kind-badge.kind-${version.kind}`, {}, KIND_LABEL[version.kind])
    ),
    time,
    authorChips(version.authors)
  )
  return h('li', { 'data-id': String(version.id) }, button)
}

/** The text fields first (the editor's own first), then the other roots by name. */
export function orderedFields(names: Iterable<string>): string[] {
  return [...names].sort((a, b) => (a === EDITOR_FIELD ? -1 : b === EDITOR_FIELD ? 1 : a < b ? -1 : a > b ? 1 : 0))
}

export interface ChangeCount {
  inserted: number
  deleted: number
}

export function countChanges(fields: Record<string, DiffSegment[]>): ChangeCount {
  let inserted = 0
  let deleted = 0
  for (const segments of Object.values(fields)) {
    for (const s of segments) {
      const n = Array.from(s.text).length
      if (s.type === 'insert') inserted += n
      else if (s.type === 'delete') deleted += n
    }
  }
  return { inserted, deleted }
}

/** Each field's diff: unchanged text plain (long runs folded), insertions and deletions marked. */
export function renderDiff(fields: Record<string, DiffSegment[]>): HTMLElement {
  const names = orderedFields(Object.keys(fields))
  const body = h('div.preview-fields')
  for (const field of names) {
    const segments = fields[field]
    const text = h('div.preview-text', { 'data-field': field })
    segments.forEach((segment, i) => {
      text.append(segmentNode(segment, i === 0, i === segments.length - 1))
    })
    if (segments.length === 0) text.append(h('span.preview-empty', {}, 'Empty'))
    body.append(fieldBlock(field, names.length, text))
  }
  if (names.length === 0) body.append(h('p.preview-empty', {}, 'This document has no text.'))
  return body
}

/** The content of a version as it was: text fields as text, other roots as JSON or XML. */
export function renderContent(content: Record<string, unknown>, types: Record<string, RootType>): HTMLElement {
  const names = orderedFields(Object.keys(content))
  const body = h('div.preview-fields')
  for (const field of names) {
    const value = content[field]
    const shown = typeof value === 'string' ? value : JSON.stringify(value, null, 2)
    const el = h(`div.preview-text${types[field] === 'text' ? '' : '.preview-code'}`, { 'data-field': field })
    el.append(shown === '' ? h('span.preview-empty', {}, 'Empty') : shown)
    body.append(fieldBlock(field, names.length, el, types[field]))
  }
  if (names.length === 0) body.append(h('p.preview-empty', {}, 'This version is empty.'))
  return body
}

function fieldBlock(field: string, count: number, text: HTMLElement, type?: RootType): HTMLElement {
  const onlyTheEditor = count === 1 && field === EDITOR_FIELD
  return h(
    'section.preview-field',
    {},
    onlyTheEditor ? null : h('h3.preview-field-name', {}, field, type && type !== 'text' ? ` (${type})` : ''),
    text
  )
}

function segmentNode(segment: DiffSegment, first: boolean, last: boolean): Node {
  if (segment.type === 'equal') return unchanged(segment.text, first, last)
  const who = segment.author
  const inserted = segment.type === 'insert'
  const title = inserted
    ? `Added since this version${who ? ` by ${who}` : ''}`
    : `Removed since this version${who ? ` (by ${who})` : ''}`
  return h(
    inserted ? 'ins.diff-insert' : 'del.diff-delete',
    {
      title,
      'data-author': who ?? undefined,
      style: who ? { textDecorationColor: colorFor(who), borderBottomColor: colorFor(who) } : undefined
    },
    segment.text
  )
}

/** An unchanged run; a long one keeps a few lines next to the changes and folds the rest behind a
 * button that shows them. */
function unchanged(text: string, first: boolean, last: boolean): Node {
  const lines = text.split('\n')
  const head = first ? 0 : CONTEXT_LINES
  const tail = last ? 0 : CONTEXT_LINES
  if (lines.length <= FOLD_LINES || lines.length <= head + tail + 2) return document.createTextNode(text)
  const before = lines.slice(0, head).join('\n') + (head ? '\n' : '')
  const hidden = lines.slice(head, lines.length - tail)
  const after = (tail ? '\n' : '') + lines.slice(lines.length - tail).join('\n')
  const wrapper = h('span.diff-equal')
  const fold = h(
    'button.diff-fold',
    {
      type: 'button',
      title: 'Show the unchanged lines',
      onclick: () => fold.replaceWith(hidden.join('\n'))
    },
    `⋯ ${hidden.length} unchanged lines`
  )
  wrapper.append(before, fold, after)
  return wrapper
}
