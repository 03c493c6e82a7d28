// What every example page shares, so that each editor's own file holds only what a user copies:
// which document (?doc=), the access token (?token=), who I am (the editor's stored identity, so
// the name and colour match /d/<name>), a small top bar with the connection state, and
// `window.example` for the tests and your browser console.
import { encodeName } from '../names'
import { loadUser } from '../user'

export interface ExampleUser {
  name: string
  color: string
}

export interface Example {
  /** The document name (`?doc=`, else `examples/<editor>`), as the server knows it. */
  name: string
  /** The name as it goes into a URL path (each '/'-separated part percent-encoded). */
  room: string
  /** `ws://HOST/ws` (or `wss:`): the y-websocket endpoint. */
  wsUrl: string
  /** `ws://HOST/hocuspocus`: the Hocuspocus endpoint (one socket, many documents). */
  hocuspocusUrl: string
  /** The page's `?token=`, when the server needs one. */
  token: string | null
  user: ExampleUser
  /** Where the editor goes. */
  mount: HTMLElement
  /** Show a provider's state in the top bar: `status` ('connecting' | 'connected' |
   * 'disconnected') and whether the first sync is done. */
  showStatus: (status: string, synced: boolean) => void
}

export function setUp(editor: string, title: string): Example {
  const query = new URLSearchParams(location.search)
  const name = query.get('doc') || `examples/${editor}`
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  const { name: userName, color } = loadUser()
  const pill = el('span', 'pill', 'Connecting…')
  pill.dataset.testid = 'connection'
  pill.dataset.state = 'connecting'
  pill.dataset.sync = 'syncing'
  const back = el('a', 'back', 'All examples')
  const token = query.get('token')
  back.href = token ? `/examples?token=${encodeURIComponent(token)}` : '/examples' // a token is kept
  const doc = el('code', 'doc-name', name)
  const bar = el('header', 'bar', back, el('h1', '', title), doc, el('span', 'spacer'), pill)
  const mount = el('main', `editor editor-${editor}`)
  document.body.append(bar, mount)
  document.title = `${title} — Collab examples`
  return {
    name,
    room: encodeName(name),
    wsUrl: `${scheme}://${location.host}/ws`,
    hocuspocusUrl: `${scheme}://${location.host}/hocuspocus`,
    token,
    user: { name: userName, color },
    mount,
    showStatus: (status, synced) => {
      pill.dataset.state = status
      pill.dataset.sync = synced ? 'synced' : 'syncing'
      pill.textContent = status === 'connected' ? (synced ? 'Connected' : 'Syncing…') : capitalise(status)
    }
  }
}

/** Make the example's objects reachable as `window.example` (tests, your console); `text()`
 * gives the editor's plain text as the editor itself shows it. */
export function expose(objects: { text: () => string } & Record<string, unknown>): void {
  ;(window as unknown as { example: unknown }).example = objects
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  if (className) node.className = className
  node.append(...children)
  return node
}

const capitalise = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1)
