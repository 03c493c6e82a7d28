// /admin: the operators' page. It asks for an admin token (`collab token --admin`; kept in this
// tab's sessionStorage, `?token=` accepted), then shows the overview (this process, charts of
// the last ten minutes, the cluster) and the documents (#/ ), or one document with its
// connections and actions (#/d/<name>). Everything goes through /api/admin (admin-api.ts).
import './styles.css'
import './admin.css'
import { AdminApi, initialToken, NeedToken, storeToken } from './admin-api'
import { DocumentView } from './admin-document'
import { DocumentsPanel } from './admin-documents'
import { OverviewPanel } from './admin-overview'
import { h } from './dom'
import { brand } from './ui'

const REFRESH_MS = 2000

const root = document.getElementById('app') as HTMLElement
const api = new AdminApi(initialToken())
let stop: (() => void) | null = null

function documentFromHash(): string | null {
  const match = /^#\/d\/(.+)$/.exec(location.hash)
  if (!match) return null
  try {
    return decodeURIComponent(match[1])
  } catch {
    return null
  }
}

function topbar(): HTMLElement {
  const signOut = h(
    'button.btn.ghost',
    {
      type: 'button',
      'data-testid': 'sign-out',
      hidden: !api.token,
      onclick: () => {
        storeToken(null)
        api.token = null
        askForToken('Signed out.')
      }
    },
    'Forget token'
  )
  return h(
    'header.topbar.admin-bar',
    {},
    brand(),
    h('span.admin-tag', {}, 'Admin'),
    h('nav.admin-nav', {}, h('a', { href: '#/' }, 'Overview & documents')),
    h('div.spacer'),
    signOut
  )
}

/** Show the current view and keep it fresh; a refused token brings the token form back. */
function show(): void {
  stop?.()
  const name = documentFromHash()
  document.title = name ? `${name} — Collab admin` : 'Collab admin'
  const main = h('main.admin-main')
  root.replaceChildren(topbar(), main)
  let views: Array<{ refresh: () => Promise<void> }>
  if (name !== null) {
    const view = new DocumentView(api, name, () => refresh())
    main.append(view.el)
    views = [view]
  } else {
    const overview = new OverviewPanel(api)
    const documents = new DocumentsPanel(api)
    main.append(overview.el, documents.el)
    views = [overview, documents]
  }
  let timer = 0
  let stopped = false
  const refresh = async (): Promise<void> => {
    window.clearTimeout(timer)
    try {
      await Promise.all(views.map((v) => v.refresh()))
    } catch (error) {
      if (error instanceof NeedToken) {
        stopped = true
        askForToken(error.status === 401 ? 'This server needs an admin token.' : 'This token is not an admin token.')
        return
      }
      console.warn('admin refresh failed', error)
    }
    if (!stopped && document.visibilityState === 'visible') timer = window.setTimeout(refresh, REFRESH_MS)
  }
  const onVisible = (): void => {
    if (document.visibilityState === 'visible' && !stopped) void refresh()
  }
  document.addEventListener('visibilitychange', onVisible)
  stop = () => {
    stopped = true
    window.clearTimeout(timer)
    document.removeEventListener('visibilitychange', onVisible)
  }
  void refresh()
}

function askForToken(why: string): void {
  stop?.()
  stop = null
  const input = h('input.input', {
    type: 'password',
    name: 'token',
    autocomplete: 'off',
    placeholder: 'eyJhbGciOi…',
    'aria-label': 'Admin token',
    'data-testid': 'token-input'
  })
  const form = h(
    'form.card.token-form',
    {
      onsubmit: (event: Event) => {
        event.preventDefault()
        const token = input.value.trim()
        if (!token) return
        storeToken(token)
        api.token = token
        show()
      }
    },
    h('h1', {}, 'Collab admin'),
    h('p.token-why', { 'data-testid': 'token-why' }, why),
    h(
      'p.muted',
      {},
      'Paste a token made with ',
      h('code', {}, 'collab token --admin'),
      '. It is kept in this tab only, until you close it.'
    ),
    input,
    h('button.btn.primary.btn-block', { type: 'submit' }, 'Open the admin page')
  )
  root.replaceChildren(
    h('header.topbar.admin-bar', {}, brand(), h('span.admin-tag', {}, 'Admin')),
    h('main.admin-gate', {}, form)
  )
  input.focus()
}

window.addEventListener('hashchange', show)
show()
