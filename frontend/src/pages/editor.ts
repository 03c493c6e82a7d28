// The editor page at /d/<document name>: CodeMirror bound to ydoc.getText('codemirror'), synced
// through a stock y-websocket provider to ws(s)://<this host>/ws with the name as the room.
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'
import { CloseCode, isTerminal } from '../closecodes'
import { type CollabEditor, createEditor } from '../codemirror'
import { Comments } from '../comments'
import { commentExtension } from '../comments-editor'
import { ConnectionBanner } from '../components/banner'
import { CommentsPanel } from '../components/comments'
import { crumbs } from '../components/crumbs'
import { HistoryPanel } from '../components/history'
import { Identity, PeopleButton } from '../components/people'
import { shareButton } from '../components/share'
import { StatusPill } from '../components/status'
import { ConnectionWatch } from '../connection'
import { h } from '../dom'
import { encodeName, pageToken } from '../names'
import { SaveWatch } from '../saved'
import { brand, toast } from '../ui'
import { loadUser } from '../user'

export function renderEditor(root: HTMLElement, name: string): void {
  document.title = `${name} — Collab`
  document.body.classList.add('page-editor')
  const { ydoc, ytext, provider } = connect(name)
  const awareness = provider.awareness
  const identity = new Identity(loadUser(), awareness)

  const status = new StatusPill()
  const banner = new ConnectionBanner(name)
  const people = new PeopleButton(awareness, identity, () => editor.view.focus())
  const history = new HistoryPanel(name, ydoc, provider)
  // the comments' button and panel need the editor; their places in the page are kept meanwhile
  const commentsButton = h('span')
  const commentsEl = h('span')
  const paper = h('div.paper')
  let readOnly = false
  let commentsPanel: CommentsPanel | null = null
  const host = {
    compose: (from: number, to: number) => commentsPanel?.compose(from, to),
    reveal: (ids: string[]) => commentsPanel?.reveal(ids),
    canComment: () => !readOnly
  }
  root.replaceChildren(
    h(
      'header.topbar.editor-bar',
      {},
      brand(false),
      crumbs(name),
      h('div.spacer'),
      status.el,
      people.el,
      commentsButton,
      history.button,
      shareButton()
    ),
    banner.el,
    h('main.editor-main', {}, paper),
    history.el,
    commentsEl
  )
  const editor = createEditor(paper, ytext, awareness, `Document ${name}`, commentExtension(host))
  const comments = new Comments(ydoc, ytext)
  const me = () => ({ id: identity.user.id, name: identity.user.name, color: identity.user.color })
  commentsPanel = new CommentsPanel(comments, editor.view, me, host.canComment)
  commentsButton.replaceWith(commentsPanel.button)
  commentsEl.replaceWith(commentsPanel.el)
  commentsPanel.onOpen = () => history.close()
  history.button.addEventListener('click', () => commentsPanel?.close())

  followConnection(name, provider, ydoc, editor, status, banner, (value) => {
    readOnly = value
  })
  identity.followTheTab()
  if (identity.firstVisit()) {
    const greeting = h('span', {}, 'Others see you as ', h('strong', {}, identity.user.name), '.')
    toast(greeting, [['Change name', () => people.rename()]], 8000)
  }
  editor.view.focus()
  Object.assign(window, { collab: { provider, ydoc, view: editor.view, comments } }) // for debugging
}

/** Keep the status pill, the banner and the editor's read-only state in step with the connection,
 * and the pill with what the server has saved. */
function followConnection(
  name: string,
  provider: WebsocketProvider,
  ydoc: Y.Doc,
  editor: CollabEditor,
  status: StatusPill,
  banner: ConnectionBanner,
  onReadOnly: (readOnly: boolean) => void
): void {
  let readOnly = false
  const update = (): void => {
    saved.follow(following())
    status.show(watch.connection, watch.edits, saved.state, saved.error)
    if (readOnly !== (watch.refusal !== null)) {
      readOnly = watch.refusal !== null
      onReadOnly(readOnly)
      queueMicrotask(() => editor.setReadOnly(readOnly)) // never dispatch inside an update
    }
    banner.follow(watch)
  }
  // The feed only once the server has taken the document (synced): a refused one never opens it.
  // (declared before the watch: its constructor's first update() reads `saved`)
  const following = (): boolean => watch?.connection === 'connected' && provider.synced
  const saved = new SaveWatch(name, ydoc, following, () => update())
  const watch: ConnectionWatch = new ConnectionWatch(provider, ydoc, update)
  update()
  provider.on('connection-close', (event) => {
    // (the provider reconnects by itself; say why this tab blinked)
    if (event?.code === CloseCode.CLOSED_BY_ADMIN) toast('An administrator closed this connection. Reconnecting…')
  })
  window.setInterval(() => banner.tick(watch), 1000)
  window.addEventListener('beforeunload', (event) => {
    if (watch.hasUnsentEdits) {
      event.preventDefault() // some edits never reached the server: let the browser ask
    }
  })
}

/** The document and its provider; reconnects after every close but a terminal one. */
function connect(name: string): { ydoc: Y.Doc; ytext: Y.Text; provider: WebsocketProvider } {
  const ydoc = new Y.Doc()
  const ytext = ydoc.getText('codemirror')
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  const params: Record<string, string> = {}
  const token = pageToken()
  if (token) params.token = token
  const provider = new WebsocketProvider(`${scheme}://${location.host}/ws`, encodeName(name), ydoc, {
    params,
    shouldReconnect: (event) => !isTerminal(event.code)
  })
  return { ydoc, ytext, provider }
}
