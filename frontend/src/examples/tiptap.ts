// /examples/tiptap: Tiptap 3 (the starter kit) with collaboration and collaboration carets, over
// the Hocuspocus protocol: a stock @hocuspocus/provider talks to this server's /hocuspocus.
// docs/embedding.md has the lines you copy.
import './examples.css'
import { HocuspocusProvider } from '@hocuspocus/provider'
import { Editor } from '@tiptap/core'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'
import StarterKit from '@tiptap/starter-kit'
import * as Y from 'yjs'
import { expose, setUp } from './shared'

const { hocuspocusUrl, name, token, user, mount, showStatus } = setUp('tiptap', 'Tiptap')

const ydoc = new Y.Doc()
// The callbacks run during the constructor (the first 'connecting' status): they must not touch
// `provider` itself, which is not assigned yet (a throw there fails the provider's first
// connection attempt, and it opens a second socket a second later).
let synced = false
const provider = new HocuspocusProvider({
  url: hocuspocusUrl,
  name, // the document name as it is: the protocol carries it in every message
  document: ydoc,
  token, // checked by the server's auth when it has one; null otherwise
  onStatus: ({ status }) => showStatus(status, synced),
  onSynced: ({ state }) => {
    synced = state
    showStatus('connected', state)
  },
  onAuthenticationFailed: () => showStatus('refused', false)
})
const editor = new Editor({
  element: mount,
  extensions: [
    StarterKit.configure({ undoRedo: false }), // Collaboration brings its own undo (yours only)
    Collaboration.configure({ document: ydoc, field: 'tiptap' }),
    CollaborationCaret.configure({ provider, user }) // { name, color }: the caret's label
  ]
})

expose({ ydoc, provider, editor, text: () => editor.getText() })
