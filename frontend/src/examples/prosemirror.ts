// /examples/prosemirror: ProseMirror (the example setup: menu, keys, input rules) bound to a
// Y.XmlFragment with y-prosemirror, over a stock y-websocket provider. docs/embedding.md has
// the lines you copy.
import 'prosemirror-view/style/prosemirror.css'
import 'prosemirror-menu/style/menu.css'
import 'prosemirror-example-setup/style/style.css'
import './examples.css'
import { exampleSetup } from 'prosemirror-example-setup'
import { keymap } from 'prosemirror-keymap'
import { schema } from 'prosemirror-schema-basic'
import { EditorState } from 'prosemirror-state'
import { EditorView } from 'prosemirror-view'
import { initProseMirrorDoc, redo, undo, yCursorPlugin, ySyncPlugin, yUndoPlugin } from 'y-prosemirror'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'
import { expose, setUp } from './shared'

const { wsUrl, room, token, user, mount, showStatus } = setUp('prosemirror', 'ProseMirror')

const ydoc = new Y.Doc()
const provider = new WebsocketProvider(wsUrl, room, ydoc, { params: token ? { token } : {} })
provider.awareness.setLocalStateField('user', user) // { name, color: '#rrggbb' }: the caret's label
const fragment = ydoc.getXmlFragment('prosemirror')
const { doc, mapping } = initProseMirrorDoc(fragment, schema)
const view = new EditorView(mount, {
  state: EditorState.create({
    doc,
    plugins: [
      ySyncPlugin(fragment, { mapping }),
      yCursorPlugin(provider.awareness),
      yUndoPlugin(), // undo your own changes only, not the others'
      keymap({ 'Mod-z': undo, 'Mod-y': redo, 'Mod-Shift-z': redo }),
      ...exampleSetup({ schema, history: false })
    ]
  })
})

provider.on('status', ({ status }) => showStatus(status, provider.synced))
provider.on('sync', (synced: boolean) => showStatus(provider.wsconnected ? 'connected' : 'connecting', synced))
expose({ ydoc, provider, view, text: () => view.state.doc.textBetween(0, view.state.doc.content.size, '\n') })
