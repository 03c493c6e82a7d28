// The CodeMirror setup: a quiet Markdown writing surface bound to a Y.Text (no line numbers or
// gutters; undo/redo through Y.UndoManager so you undo your own edits, not your colleague's).
import { defaultKeymap, indentWithTab } from '@codemirror/commands'
import { markdown, markdownLanguage } from '@codemirror/lang-markdown'
import { HighlightStyle, indentOnInput, syntaxHighlighting } from '@codemirror/language'
import { highlightSelectionMatches, search, searchKeymap } from '@codemirror/search'
import { Compartment, EditorState, type Extension } from '@codemirror/state'
import {
  crosshairCursor,
  drawSelection,
  dropCursor,
  highlightSpecialChars,
  keymap,
  placeholder,
  rectangularSelection
} from '@codemirror/view'
import { tags as t } from '@lezer/highlight'
import { EditorView } from 'codemirror'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import type { Awareness } from 'y-protocols/awareness'
import * as Y from 'yjs'

const markdownHighlight = HighlightStyle.define([
  { tag: t.heading1, fontSize: '1.75em', fontWeight: '700', letterSpacing: '-0.02em' },
  { tag: t.heading2, fontSize: '1.4em', fontWeight: '700', letterSpacing: '-0.01em' },
  { tag: t.heading3, fontSize: '1.2em', fontWeight: '650' },
  { tag: [t.heading4, t.heading5, t.heading6], fontWeight: '650' },
  { tag: t.strong, fontWeight: '700' },
  { tag: t.emphasis, fontStyle: 'italic' },
  { tag: t.strikethrough, textDecoration: 'line-through' },
  { tag: t.link, color: 'var(--link)', textDecoration: 'underline', textUnderlineOffset: '3px' },
  { tag: t.url, color: 'var(--muted)' },
  { tag: t.monospace, fontFamily: 'var(--mono)', fontSize: '0.88em', color: 'var(--code)' },
  { tag: t.quote, color: 'var(--muted)', fontStyle: 'italic' },
  { tag: [t.processingInstruction, t.contentSeparator, t.meta], color: 'var(--faint)' },
  { tag: t.list, color: 'var(--text)' }
])

const theme = EditorView.theme({
  '&': { color: 'var(--text)', backgroundColor: 'transparent', fontSize: 'var(--editor-size)' },
  '&.cm-focused': { outline: 'none' },
  '.cm-scroller': { fontFamily: 'var(--sans)', lineHeight: '1.7', overflow: 'visible' },
  '.cm-content': { padding: '0 0 30vh', caretColor: 'var(--accent)' },
  '.cm-line': { padding: '0' },
  '.cm-cursor, .cm-dropCursor': { borderLeft: '2px solid var(--accent)' },
  '&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection':
    { backgroundColor: 'var(--selection) !important' },
  '.cm-placeholder': { color: 'var(--faint)', fontStyle: 'normal' },
  '.cm-selectionMatch': { backgroundColor: 'var(--match)' },
  // Remote carets: a thin bar in the user's colour with their name always shown above it.
  '.cm-ySelectionCaret': { borderLeftWidth: '1px', borderRightWidth: '1px' },
  '.cm-ySelectionCaretDot': { display: 'none' },
  '.cm-ySelectionInfo': {
    opacity: '1',
    top: '-1.45em',
    left: '-1px',
    padding: '1px 6px',
    borderRadius: '5px 5px 5px 0',
    fontFamily: 'var(--sans)',
    fontSize: '11px',
    fontWeight: '600',
    lineHeight: '1.35',
    letterSpacing: '0.01em',
    color: '#fff',
    pointerEvents: 'none',
    boxShadow: '0 1px 2px rgba(0,0,0,.15)'
  },
  '.cm-panels': { backgroundColor: 'var(--surface)', color: 'var(--text)', borderColor: 'var(--border)' },
  '.cm-panels.cm-panels-top': { borderBottom: '1px solid var(--border)' },
  '.cm-panels.cm-panels-bottom': { borderTop: '1px solid var(--border)' },
  '.cm-search': { fontFamily: 'var(--sans)', fontSize: '14px', padding: '8px 12px' },
  '.cm-textfield': {
    borderRadius: '6px',
    border: '1px solid var(--border-strong)',
    padding: '3px 6px',
    backgroundColor: 'var(--bg)',
    color: 'var(--text)'
  },
  '.cm-button': {
    borderRadius: '6px',
    backgroundImage: 'none',
    backgroundColor: 'var(--surface-2)',
    border: '1px solid var(--border)',
    color: 'var(--text)'
  }
})

export interface CollabEditor {
  view: EditorView
  setReadOnly(readOnly: boolean): void
}

export function createEditor(
  parent: HTMLElement,
  ytext: Y.Text,
  awareness: Awareness,
  label: string,
  more: Extension = []
): CollabEditor {
  const editable = new Compartment()
  const undoManager = new Y.UndoManager(ytext)
  const extensions: Extension[] = [
    keymap.of([...yUndoManagerKeymap, ...searchKeymap, ...defaultKeymap, indentWithTab]),
    highlightSpecialChars(),
    drawSelection(),
    dropCursor(),
    rectangularSelection(),
    crosshairCursor(),
    highlightSelectionMatches(),
    search({ top: true }),
    indentOnInput(),
    markdown({ base: markdownLanguage }),
    syntaxHighlighting(markdownHighlight),
    EditorView.lineWrapping,
    placeholder('Start writing… Markdown works: # heading, **bold**, - lists'),
    yCollab(ytext, awareness, { undoManager }),
    EditorView.contentAttributes.of({
      'aria-label': label,
      spellcheck: 'true',
      autocorrect: 'on',
      autocapitalize: 'sentences'
    }),
    editable.of([]),
    more,
    theme
  ]
  const view = new EditorView({
    parent,
    state: EditorState.create({ doc: ytext.toString(), extensions })
  })
  return {
    view,
    setReadOnly(readOnly) {
      view.dispatch({
        effects: editable.reconfigure(readOnly ? [EditorState.readOnly.of(true), EditorView.editable.of(false)] : [])
      })
    }
  }
}
