// /examples/monaco: the Monaco editor bound to a Y.Text with y-monaco, over a stock y-websocket
// provider. Its worker is our own bundle (build.mjs), loaded from this server: no CDN.
// The text is the CodeMirror editor's ('codemirror'), so /examples/monaco?doc=x and /d/x edit
// the same words. docs/embedding.md has the lines you copy.
import './examples.css'
import * as monaco from 'monaco-editor/editor/editor.api.js'
import 'monaco-editor/features/register.all.js' // find, suggest, folding, context menu...: every editor feature
import 'monaco-editor/languages/definitions/markdown/register.js' // one language, not all of them
import { MonacoBinding } from 'y-monaco'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'
import { expose, setUp } from './shared'

// The worker's URL, hashed, from build.mjs.
declare const MONACO_WORKER_URL: string
;(self as unknown as { MonacoEnvironment: monaco.Environment }).MonacoEnvironment = {
  getWorker: () => new Worker(MONACO_WORKER_URL, { name: 'monaco-editor' })
}

const { wsUrl, room, token, user, mount, showStatus } = setUp('monaco', 'Monaco')

const ydoc = new Y.Doc()
const provider = new WebsocketProvider(wsUrl, room, ydoc, { params: token ? { token } : {} })
provider.awareness.setLocalStateField('user', user)
const editor = monaco.editor.create(mount, {
  language: 'markdown',
  automaticLayout: true,
  wordWrap: 'on',
  minimap: { enabled: false },
  padding: { top: 20 }, // room for the name above a caret on the first line
  theme: matchMedia('(prefers-color-scheme: dark)').matches ? 'vs-dark' : 'vs'
})
const model = editor.getModel() as monaco.editor.ITextModel
const binding = new MonacoBinding(ydoc.getText('codemirror'), model, new Set([editor]), provider.awareness)

// y-monaco marks remote selections with the classes yRemoteSelection-<client id> and
// yRemoteSelectionHead-<client id>; their colours and names are the page's to draw.
const carets = document.head.appendChild(document.createElement('style'))
provider.awareness.on('change', () => {
  const rules: string[] = []
  provider.awareness.getStates().forEach((state, clientId) => {
    const color = /^#[0-9a-f]{6}$/i.test(state.user?.color) ? state.user.color : '#ffa500'
    const name = cssString(String(state.user?.name ?? `User ${clientId}`))
    rules.push(
      `.yRemoteSelection-${clientId} { background-color: ${color}40 }`,
      `.yRemoteSelectionHead-${clientId} { border-color: ${color} }`,
      `.yRemoteSelectionHead-${clientId}::after { content: ${name}; background: ${color} }`
    )
  })
  carets.textContent = rules.join('\n')
})

provider.on('status', ({ status }) => showStatus(status, provider.synced))
provider.on('sync', (synced: boolean) => showStatus(provider.wsconnected ? 'connected' : 'connecting', synced))
expose({ ydoc, provider, editor, binding, text: () => editor.getValue() })

/** A CSS string literal of any text (a name may hold quotes, backslashes or line breaks). */
function cssString(text: string): string {
  return `"${text.replace(/[\\"\n\r\f]/g, (c) => `\\${c.charCodeAt(0).toString(16)} `)}"`
}
