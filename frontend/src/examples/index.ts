// /examples: the embedding examples, next to the CodeMirror editor, all opening one document name.
import './examples.css'
import { editorPath } from '../names'

interface Entry {
  id: string
  title: string
  what: string
  packages: string
}

// biome-ignore format: a table, kept in rows
const EXAMPLES: Entry[] = [
  { id: 'codemirror', title: 'CodeMirror 6', what: "Collab's own editor: presence, history, sharing.", packages: 'y-codemirror.next · y-websocket' },
  { id: 'prosemirror', title: 'ProseMirror', what: 'Rich text with the example setup (menu, lists, headings).', packages: 'y-prosemirror · y-websocket' },
  { id: 'tiptap', title: 'Tiptap', what: 'Rich text over the Hocuspocus protocol, with collaboration carets.', packages: '@tiptap/extension-collaboration · @hocuspocus/provider' },
  { id: 'quill', title: 'Quill', what: 'Rich text with the snow toolbar and quill-cursors.', packages: 'y-quill · quill-cursors · y-websocket' },
  { id: 'monaco', title: 'Monaco', what: "VS Code's editor; shares its text with the CodeMirror editor.", packages: 'y-monaco · y-websocket' }
]

const query = new URLSearchParams(location.search)
const token = query.get('token')
const field = Object.assign(document.createElement('input'), {
  className: 'input',
  value: query.get('doc') ?? '',
  placeholder: 'examples/<editor>',
  spellcheck: false
})
field.setAttribute('aria-label', 'Document name')
const list = document.createElement('ul')
list.className = 'examples'

function href(id: string): string {
  const doc = field.value.trim()
  const params = new URLSearchParams()
  if (id !== 'codemirror' && doc) params.set('doc', doc)
  if (token) params.set('token', token)
  const path = id === 'codemirror' ? editorPath(doc || 'examples/codemirror') : `/examples/${id}`
  const search = params.toString()
  return search ? `${path}?${search}` : path
}

function render(): void {
  list.replaceChildren(
    ...EXAMPLES.map((entry) => {
      const link = Object.assign(document.createElement('a'), { href: href(entry.id), textContent: entry.title })
      link.dataset.example = entry.id
      const item = document.createElement('li')
      item.append(link, paragraph(entry.what, 'what'), paragraph(entry.packages, 'packages'))
      return item
    })
  )
}

function paragraph(text: string, className: string): HTMLParagraphElement {
  return Object.assign(document.createElement('p'), { className, textContent: text })
}

const intro = paragraph(
  'Each page is a few lines around a stock Yjs provider (docs/embedding.md). Open one in two windows ' +
    'and type: the text, the carets and, after a reload, the document come from this server.',
  'lede'
)
const label = Object.assign(document.createElement('label'), { className: 'doc-field' })
label.append(paragraph('Document name (empty: one per editor)', 'hint'), field)
const heading = Object.assign(document.createElement('h1'), { textContent: 'Embedding examples' })
const home = Object.assign(document.createElement('a'), {
  href: token ? `/?token=${encodeURIComponent(token)}` : '/',
  textContent: 'Collab',
  className: 'back'
})
const page = document.createElement('main')
page.className = 'index'
page.append(home, heading, intro, label, list)
document.body.append(page)
field.addEventListener('input', render)
render()
