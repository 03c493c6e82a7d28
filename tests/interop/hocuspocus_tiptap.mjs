// A Tiptap editor over the Hocuspocus protocol, as an app would write it: bundled by esbuild
// for tests/interop/test_hocuspocus_tiptap.py, which serves it to Chromium.
//
//   ?url=ws://HOST/hocuspocus&doc=NAME&user=NAME&color=%23hex[&token=JWT]
//
// The document's content is the XML fragment 'xml' (what yclient.mjs's xml ops write, so a
// y-websocket client can edit the same paragraphs). Marks for the test: body[data-synced],
// body[data-scope], window.editor, window.provider.

import { HocuspocusProvider } from '@hocuspocus/provider'
import { Editor } from '@tiptap/core'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'
import StarterKit from '@tiptap/starter-kit'

const params = new URLSearchParams(location.search)

const provider = new HocuspocusProvider({
  url: params.get('url'),
  name: params.get('doc'),
  token: params.get('token'),
  onAuthenticated: ({ scope }) => {
    document.body.dataset.scope = scope
  },
  onSynced: () => {
    document.body.dataset.synced = '1'
  },
})

const editor = new Editor({
  element: document.querySelector('#editor'),
  extensions: [
    StarterKit.configure({ undoRedo: false }), // Yjs has its own undo
    Collaboration.configure({ document: provider.document, field: 'xml' }),
    CollaborationCaret.configure({
      provider,
      user: { name: params.get('user'), color: params.get('color') },
    }),
  ],
})

window.editor = editor
window.provider = provider
