// Comments in CodeMirror: the commented words highlighted (the open thread's more strongly), a
// "Comment" button by a selection (and Mod-Alt-M), and a click on a highlight opening its thread.
// The highlights are recomputed from the document's comments (comments.ts) after each Yjs
// change and mapped through local edits in between, so they follow typing without a lag.
import { type Extension, type Range, StateEffect, StateField } from '@codemirror/state'
import { Decoration, type DecorationSet, EditorView, keymap, showTooltip, type Tooltip } from '@codemirror/view'
import type { Thread } from './comments'
import { h } from './dom'

export interface CommentHost {
  /** The user asked to comment on from..to. */
  compose(from: number, to: number): void
  /** The user clicked the words of these threads (innermost first). */
  reveal(ids: string[]): void
  /** May this tab comment (false when read-only)? */
  canComment(): boolean
}

interface Shown {
  threads: Thread[]
  active: string | null
}

const show = StateEffect.define<Shown>()

const highlights = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(set, tr) {
    let next = set.map(tr.changes)
    for (const effect of tr.effects) {
      if (effect.is(show)) next = decorations(effect.value, tr.state.doc.length)
    }
    return next
  },
  provide: (field) => EditorView.decorations.from(field)
})

function decorations({ threads, active }: Shown, length: number): DecorationSet {
  const ranges: Range<Decoration>[] = []
  for (const t of threads) {
    const from = Math.min(t.from, length)
    const to = Math.min(t.to, length)
    if (t.resolved || to <= from) continue
    const cls = t.id === active ? 'cm-comment cm-comment-active' : 'cm-comment'
    ranges.push(Decoration.mark({ class: cls, attributes: { 'data-comment': t.id } }).range(from, to))
  }
  return Decoration.set(ranges, true)
}

/** Show `threads` (with `active` emphasised) in `view`; call after any change to them. */
export function showComments(view: EditorView, threads: Thread[], active: string | null): void {
  view.dispatch({ effects: show.of({ threads, active }) })
}

export function commentExtension(host: CommentHost): Extension {
  const selectionTooltip = StateField.define<readonly Tooltip[]>({
    create: () => [],
    update(tooltips, tr) {
      if (!tr.docChanged && !tr.selection && !tr.effects.length) return tooltips
      const range = tr.state.selection.main
      if (range.empty || !host.canComment()) return []
      return [
        {
          pos: range.head,
          above: range.head === range.from,
          arrow: false,
          create: () => {
            const button = h(
              'button.comment-add',
              {
                type: 'button',
                title: 'Comment on the selected text (Ctrl+Alt+M)',
                'data-testid': 'comment-add',
                onmousedown: (e: Event) => e.preventDefault(), // keep the selection
                onclick: () => host.compose(range.from, range.to)
              },
              'Comment'
            )
            // (CodeMirror gives the tooltip's own node its `cm-tooltip` look: a wrapper takes it)
            return { dom: h('div.cm-comment-tip', {}, button) }
          }
        }
      ]
    },
    provide: (field) => showTooltip.computeN([field], (state) => state.field(field))
  })
  return [
    EditorView.theme({ '.cm-tooltip.cm-comment-tip': { border: 'none', backgroundColor: 'transparent' } }),
    highlights,
    selectionTooltip,
    keymap.of([
      {
        key: 'Mod-Alt-m',
        run: (view) => {
          const range = view.state.selection.main
          if (range.empty || !host.canComment()) return false
          host.compose(range.from, range.to)
          return true
        }
      }
    ]),
    EditorView.domEventHandlers({
      click: (event) => {
        const target = event.target as HTMLElement | null
        const ids: string[] = []
        for (let el = target?.closest('[data-comment]'); el; el = el.parentElement?.closest('[data-comment]')) {
          const id = (el as HTMLElement).dataset.comment
          if (id) ids.push(id)
        }
        if (ids.length) host.reveal(ids)
        return false
      }
    })
  ]
}
