// /examples/quill: Quill 2 (the snow theme) bound to a Y.Text with y-quill, remote carets by
// quill-cursors, over a stock y-websocket provider. docs/embedding.md has the lines you copy.
import 'quill/dist/quill.snow.css'
import './examples.css'
import Quill from 'quill'
import QuillCursors from 'quill-cursors'
import { QuillBinding } from 'y-quill'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'
import { expose, setUp } from './shared'

const { wsUrl, room, token, user, mount, showStatus } = setUp('quill', 'Quill')

Quill.register('modules/cursors', QuillCursors)
const ydoc = new Y.Doc()
const provider = new WebsocketProvider(wsUrl, room, ydoc, { params: token ? { token } : {} })
provider.awareness.setLocalStateField('user', user) // { name, color }: the caret's flag
const quill = new Quill(mount.appendChild(document.createElement('div')), {
  theme: 'snow',
  placeholder: 'Write together…',
  modules: { cursors: true, history: { userOnly: true } } // undo your own changes only
})
const binding = new QuillBinding(ydoc.getText('quill'), quill, provider.awareness)
// quill-cursors shows a caret's name on hover; show it for a few seconds whenever it moves too.
const cursors = quill.getModule('cursors') as QuillCursors
provider.awareness.on('change', ({ updated }: { updated: number[] }) => {
  for (const id of updated) if (id !== ydoc.clientID) cursors.toggleFlag(String(id), true)
})

provider.on('status', ({ status }) => showStatus(status, provider.synced))
provider.on('sync', (synced: boolean) => showStatus(provider.wsconnected ? 'connected' : 'connecting', synced))
expose({ ydoc, provider, quill, binding, text: () => quill.getText().replace(/\n$/, '') })
