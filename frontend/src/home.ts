// The start page: open or create a document by name, and the list of documents on this server.
import { type DocumentInfo, listDocuments } from './api'
import { h } from './dom'
import { absoluteTime, byteSize, plural, relativeTime } from './format'
import { arrowIcon, docIcon } from './icons'
import { editorPath, pageToken, untitledName, withToken } from './names'
import { avatar, brand, nameForm, popover } from './ui'
import { loadUser, saveUser } from './user'

const REFRESH_MS = 10_000

export function renderHome(root: HTMLElement): void {
  document.title = 'Collab'
  let docs: DocumentInfo[] | null = null
  let loadError = ''

  const input = h('input.input.input-lg', {
    id: 'doc-name',
    type: 'text',
    placeholder: 'team/weekly-notes',
    autocomplete: 'off',
    autocapitalize: 'off',
    spellcheck: false,
    enterKeyHint: 'go',
    'aria-label': 'Document name',
    'data-testid': 'doc-name'
  })
  const submitLabel = document.createTextNode('Open')
  const submit = h('button.btn.primary.btn-lg', { type: 'submit', 'data-testid': 'open-doc' }, submitLabel, arrowIcon())
  const form = h(
    'form.open-form',
    {
      onsubmit: (e: Event) => {
        e.preventDefault()
        const name = input.value.trim()
        if (!name) {
          input.focus()
          return
        }
        location.assign(withToken(editorPath(name)))
      }
    },
    h('div.field', {}, h('span.field-prefix', { 'aria-hidden': 'true' }, '/d/'), input),
    submit
  )
  const list = h('ul.doc-list', { 'data-testid': 'doc-list' })
  const count = h('span.count')
  const status = h('div.list-status')

  const me = loadUser()
  const meButton = h('button.avatar-button', { type: 'button', title: 'Change your name', 'aria-haspopup': 'dialog' })
  const renderMe = (): void => {
    meButton.replaceChildren(avatar({ name: me.name, color: me.color, me: true }), h('span.me-name', {}, me.name))
  }
  renderMe()
  meButton.addEventListener('click', () => {
    const pop = popover(
      meButton,
      nameForm(
        me,
        (name) => {
          me.name = name
          saveUser(me)
          renderMe()
          pop.close()
        },
        () => pop.close()
      )
    )
  })

  root.replaceChildren(
    h('header.topbar', {}, brand(), h('div.spacer'), meButton),
    h(
      'main.home',
      {},
      h(
        'section.hero',
        {},
        h('h1', {}, 'Write together, in real time.'),
        h(
          'p.lede',
          {},
          'Open a document by name and share its link. Everyone who opens it edits the same text, ',
          'sees each other’s cursors, and never loses a keystroke.'
        ),
        form,
        h(
          'p.hint',
          {},
          'Use slashes to group documents, like ',
          h('code', {}, 'team/notes'),
          '. Or ',
          h('a', { href: withToken(editorPath(untitledName())), 'data-testid': 'new-blank' }, 'start a blank document'),
          '.'
        )
      ),
      h(
        'section.docs',
        { 'aria-labelledby': 'docs-heading' },
        h('div.section-head', {}, h('h2#docs-heading', {}, 'Documents'), count),
        h(
          'div.doc-columns',
          { 'aria-hidden': 'true' },
          h('span', {}, 'Name'),
          h('span', {}, 'Last edited'),
          h('span.num', {}, 'Size'),
          h('span.num', {}, 'Online')
        ),
        list,
        status
      )
    ),
    h('footer.footer', {}, 'Collab · self-hosted real-time editing')
  )

  const render = (): void => {
    const filter = input.value.trim().toLowerCase()
    const exact = docs?.some((d) => d.name === input.value.trim()) ?? false
    submitLabel.textContent = input.value.trim() && !exact && docs ? 'Create' : 'Open'
    if (docs === null) {
      status.textContent = loadError || 'Loading documents…'
      status.hidden = false
      list.replaceChildren()
      count.textContent = ''
      return
    }
    const shown = docs
      .filter((d) => !filter || d.name.toLowerCase().includes(filter))
      .sort((a, b) => b.updated_at_ms - a.updated_at_ms)
    count.textContent = String(docs.length)
    list.replaceChildren(...shown.map(row))
    status.hidden = shown.length > 0 && !loadError
    status.textContent = loadError
      ? loadError
      : docs.length === 0
        ? 'No documents yet. Name one above to start writing.'
        : shown.length === 0
          ? `No document matches “${input.value.trim()}”. Press Enter to create it.`
          : ''
  }

  const load = async (): Promise<void> => {
    const token = pageToken()
    try {
      const answer = await listDocuments(token)
      if (answer === 'denied') {
        docs = null
        loadError = token
          ? 'Your access link has expired or is not valid here, so the documents cannot be listed. Ask for a new link.'
          : 'This server lists its documents only for people with an access link. Open the link you were given, or a document by its name.'
      } else {
        docs = answer
        loadError = ''
      }
    } catch {
      loadError = docs
        ? 'Could not refresh the list; showing what we had.'
        : 'Could not load the documents from the server.'
    }
    render()
  }

  input.addEventListener('input', render)
  void load()
  window.setInterval(() => {
    if (document.visibilityState === 'visible') void load()
  }, REFRESH_MS)
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') void load()
  })
  // Type straight away on a desktop; on a touch screen, do not pop the keyboard up unasked.
  if (!window.matchMedia('(pointer: coarse)').matches) input.focus()
}

function row(doc: DocumentInfo): HTMLLIElement {
  const online = doc.online > 0
  return h(
    'li',
    { 'data-name': doc.name },
    h(
      'a.doc-row',
      { href: withToken(editorPath(doc.name)) },
      h('span.doc-name', {}, docIcon(), h('span.doc-name-text', { title: doc.name }, doc.name)),
      h('span.doc-edited', { title: absoluteTime(doc.updated_at_ms) }, relativeTime(doc.updated_at_ms)),
      h('span.doc-size.num', {}, byteSize(doc.size_bytes)),
      h(
        'span.doc-online.num',
        {},
        online
          ? h(
              'span.online-badge',
              { title: `${plural(doc.online, 'connection', 'connections')} now` },
              h('span.live-dot'),
              `${doc.online} online`
            )
          : h('span.muted', {}, '—')
      )
    )
  )
}
