// The editor page at /d/<document name>: CodeMirror bound to ydoc.getText('codemirror'), synced
// through a stock y-websocket provider to ws(s)://<this host>/ws with the name as the room.
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'
import { CloseCode, isTerminal } from './closecodes'
import { createEditor } from './codemirror'
import { type ConnectionState, ConnectionWatch, type EditState, type Refusal } from './connection'
import { h } from './dom'
import { linkIcon } from './icons'
import { encodeName, pageToken, withToken } from './names'
import { peopleIn, presenceList, presenceStack } from './presence'
import { brand, nameForm, popover, toast } from './ui'
import { loadUser, saveUser, type User } from './user'

export function renderEditor(root: HTMLElement, name: string): void {
  document.title = `${name} — Collab`
  document.body.classList.add('page-editor')
  const user = loadUser()
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
  const awareness = provider.awareness
  // y-codemirror.next keeps a remote caret's DOM while its colour string is unchanged
  // (YRemoteCaretWidget.eq compares colours only), so a new name would not show on other
  // screens. Each rename flips the colour between '#rrggbb' and the identical '#rrggbbff'.
  let renames = 0
  const publishUser = (u: User): void => {
    const color = renames % 2 === 0 ? u.color : `${u.color}ff`
    awareness.setLocalStateField('user', { id: u.id, name: u.name, color, colorLight: u.colorLight })
  }
  publishUser(user)

  // -- layout --------------------------------------------------------------------------------
  const statusLabel = h('span.status-label')
  const status = h(
    'div.status',
    { 'data-testid': 'connection', role: 'status', 'aria-live': 'polite' },
    h('span.status-dot'),
    statusLabel
  )
  const presence = h('button.presence', {
    type: 'button',
    'data-testid': 'presence',
    'aria-haspopup': 'dialog',
    title: 'Who is here'
  })
  const share = h(
    'button.btn.ghost.share',
    { type: 'button', title: 'Copy a link to this document' },
    linkIcon(),
    h('span.share-label', {}, 'Share')
  )
  const banner = h('div.banner', { hidden: true, 'data-testid': 'banner', role: 'alert' })
  const paper = h('div.paper')
  root.replaceChildren(
    h('header.topbar.editor-bar', {}, brand(false), title(name), h('div.spacer'), status, presence, share),
    banner,
    h('main.editor-main', {}, paper)
  )
  const editor = createEditor(paper, ytext, awareness, `Document ${name}`)

  // -- connection and edits --------------------------------------------------------------------
  const watch = new ConnectionWatch(provider, ydoc, () => renderStatus())
  let bannerFor = ''
  let readOnly = false
  const renderStatus = (): void => {
    const { text, detail } = statusText(watch.connection, watch.edits)
    status.dataset.state = watch.connection
    status.dataset.sync = watch.edits
    statusLabel.textContent = text
    status.title = detail
    if (readOnly !== (watch.refusal !== null)) {
      readOnly = watch.refusal !== null
      queueMicrotask(() => editor.setReadOnly(readOnly)) // never dispatch inside an update
    }
    const key = watch.refusal ? `refused-${watch.refusal.code}` : watch.connection === 'offline' ? 'offline' : ''
    if (key !== bannerFor) {
      bannerFor = key
      banner.hidden = key === ''
      banner.dataset.kind = key
      banner.replaceChildren(
        ...(watch.refusal
          ? refusalBanner(watch.refusal, name, () => watch.retry())
          : key === 'offline'
            ? offlineBanner()
            : [])
      )
    }
  }
  renderStatus()
  // A slow reconnect gets a calm explanation after a few seconds, not a flash on every blip.
  window.setInterval(() => {
    const slow = watch.connection === 'reconnecting' && watch.downSince !== null && Date.now() - watch.downSince > 4000
    if (slow && bannerFor === '') {
      bannerFor = 'reconnecting'
      banner.hidden = false
      banner.dataset.kind = 'reconnecting'
      banner.replaceChildren(...reconnectingBanner())
    } else if (!slow && bannerFor === 'reconnecting') {
      bannerFor = ''
      banner.hidden = true
    }
  }, 1000)
  window.addEventListener('beforeunload', (event) => {
    if (watch.hasUnsentEdits) {
      event.preventDefault() // some edits never reached the server: let the browser ask
    }
  })

  // -- presence ----------------------------------------------------------------------------
  let openPanel: { close: () => void } | null = null
  const renderPresence = (): void => {
    const people = peopleIn(awareness)
    presence.replaceChildren(...presenceStack(people))
    presence.setAttribute('aria-label', `${people.length} ${people.length === 1 ? 'person' : 'people'} here`)
  }
  awareness.on('change', renderPresence)
  renderPresence()
  const rename = (): void => {
    openPanel?.close()
    openPanel = popover(
      presence,
      nameForm(
        user,
        (newName) => {
          if (newName !== user.name) renames++
          user.name = newName
          saveUser(user)
          publishUser(user)
          openPanel?.close()
          editor.view.focus()
        },
        () => openPanel?.close()
      )
    )
  }
  presence.addEventListener('click', () => {
    if (presence.getAttribute('aria-expanded') === 'true') return openPanel?.close()
    openPanel = popover(presence, presenceList(peopleIn(awareness), rename))
  })
  // Leave at once when the tab goes away (the server would also drop us when the socket closes).
  window.addEventListener('pagehide', () => awareness.setLocalState(null))
  window.addEventListener('pageshow', (e) => {
    if (e.persisted) publishUser(user)
  })

  // -- share, first visit ------------------------------------------------------------------
  share.addEventListener('click', () => void copyLink(share))
  if (!user.introSeen) {
    user.introSeen = true
    saveUser(user)
    toast(h('span', {}, 'Others see you as ', h('strong', {}, user.name), '.'), [['Change name', rename]], 8000)
  }
  editor.view.focus()
  Object.assign(window, { collab: { provider, ydoc, view: editor.view } }) // for debugging
}

function title(name: string): HTMLElement {
  const slash = name.lastIndexOf('/')
  const folder = slash > 0 ? name.slice(0, slash + 1) : ''
  const leaf = slash > 0 ? name.slice(slash + 1) || name : name
  return h(
    'nav.crumbs',
    { 'aria-label': 'Breadcrumb' },
    h('a.crumb-home', { href: withToken('/') }, 'Documents'),
    h('span.crumb-sep', { 'aria-hidden': 'true' }, '/'),
    h(
      'h1.doc-title',
      { title: name, 'data-testid': 'doc-title' },
      folder ? h('span.doc-folder', {}, folder) : null,
      leaf
    )
  )
}

function statusText(connection: ConnectionState, edits: EditState): { text: string; detail: string } {
  switch (connection) {
    case 'connecting':
      return { text: 'Connecting…', detail: 'Opening the document on the server.' }
    case 'connected':
      return edits === 'synced'
        ? { text: 'Synced', detail: 'Connected. Everything you typed has been sent to the server.' }
        : { text: 'Syncing…', detail: 'Connected. Exchanging the latest changes with the server.' }
    case 'reconnecting':
      return edits === 'unsent'
        ? {
            text: 'Reconnecting…',
            detail: 'Lost the connection. Your new edits are kept in this tab and sync when it is back.'
          }
        : { text: 'Reconnecting…', detail: 'Lost the connection to the server; trying again.' }
    case 'offline':
      return {
        text: 'Offline',
        detail: 'This device is offline. Keep writing: your edits sync when you are back online.'
      }
    case 'closed':
      return { text: 'Disconnected', detail: 'The server refused this document; see the message above the editor.' }
  }
}

function refusalBanner(refusal: Refusal, name: string, retry: () => void): Node[] {
  const [heading, explanation] =
    refusal.code === CloseCode.UNAUTHORIZED
      ? [
          'Sign-in needed',
          'This server only opens documents for people with a valid access link or token. Open the link you were given, or ask the person who runs this server for access.'
        ]
      : refusal.code === CloseCode.FORBIDDEN
        ? [
            'No access to this document',
            `The server refused access to “${name}”. Ask the document’s owner to give you access.`
          ]
        : [
            'This document can’t be opened',
            `The server does not accept “${name}” as a document name. Pick a different name on the start page.`
          ]
  return [
    h(
      'div.banner-text',
      {},
      h('strong', {}, heading),
      h('span', {}, explanation),
      refusal.reason
        ? h('span.banner-reason', {}, `Server said: ${refusal.reason} (code ${refusal.code})`)
        : h('span.banner-reason', {}, `Close code ${refusal.code}`)
    ),
    h(
      'div.banner-actions',
      {},
      h('a.btn.ghost', { href: withToken('/') }, 'All documents'),
      h('button.btn.primary', { type: 'button', onclick: retry }, 'Try again')
    )
  ]
}

function offlineBanner(): Node[] {
  return [
    h(
      'div.banner-text',
      {},
      h('strong', {}, 'You’re offline.'),
      h('span', {}, 'Keep writing — your edits stay in this tab and sync when the connection returns.')
    )
  ]
}

function reconnectingBanner(): Node[] {
  return [
    h(
      'div.banner-text',
      {},
      h('strong', {}, 'Reconnecting to the server…'),
      h(
        'span',
        {},
        'Keep writing — your edits stay in this tab and sync as soon as it is back. Don’t close this tab until then.'
      )
    )
  ]
}

async function copyLink(button: HTMLElement): Promise<void> {
  const url = new URL(location.href)
  url.searchParams.delete('token') // an access token is personal: never put it in a shared link
  const link = url.toString()
  try {
    await navigator.clipboard.writeText(link)
    toast('Link copied. Anyone who opens it can edit this document with you.')
  } catch {
    const field = h('input.input', { value: link, readOnly: true, 'aria-label': 'Link to this document' })
    popover(button, h('div.copy-box', {}, h('label.form-label', {}, 'Copy this link'), field))
    requestAnimationFrame(() => field.select())
  }
}
