// The start page: open or create a document by name, and the list of documents on this server.
import { listDocuments } from '../api'
import { DocumentList, type Listing } from '../components/doc-list'
import { meButton } from '../components/me-button'
import { OpenForm } from '../components/open-form'
import { h } from '../dom'
import { editorPath, pageToken, untitledName, withToken } from '../names'
import { brand } from '../ui'
import { loadUser } from '../user'

const REFRESH_MS = 10_000

export function renderHome(root: HTMLElement): void {
  document.title = 'Collab'
  const form = new OpenForm()
  const documents = new DocumentList()
  root.replaceChildren(
    h('header.topbar', {}, brand(), h('div.spacer'), meButton(loadUser())),
    h('main.home', {}, hero(form.el), documents.el),
    h('footer.footer', {}, 'Collab · self-hosted real-time editing')
  )

  let listing: Listing = { docs: null, error: '' }
  const render = (): void => {
    const query = form.name
    form.offerCreate(query !== '' && listing.docs !== null && !listing.docs.some((d) => d.name === query))
    documents.show(listing, query)
  }
  form.input.addEventListener('input', render)
  whileVisible(async () => {
    listing = await refreshed(listing)
    render()
  })
  // Type straight away on a desktop; on a touch screen, do not pop the keyboard up unasked.
  if (!window.matchMedia('(pointer: coarse)').matches) form.input.focus()
}

function hero(form: HTMLFormElement): HTMLElement {
  return h(
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
  )
}

/** The list from the server, or what to say instead (keeping the last list on a failed refresh). */
async function refreshed(previous: Listing): Promise<Listing> {
  const token = pageToken()
  try {
    const answer = await listDocuments(token)
    if (answer !== 'denied') return { docs: answer, error: '' }
    const error = token
      ? 'Your access link has expired or is not valid here, so the documents cannot be listed. Ask for a new link.'
      : 'This server lists its documents only for people with an access link. ' +
        'Open the link you were given, or a document by its name.'
    return { docs: null, error }
  } catch {
    const error = previous.docs
      ? 'Could not refresh the list; showing what we had.'
      : 'Could not load the documents from the server.'
    return { docs: previous.docs, error }
  }
}

/** Run `load` now, every REFRESH_MS while the tab is visible, and when it becomes visible again. */
function whileVisible(load: () => Promise<void>): void {
  void load()
  window.setInterval(() => {
    if (document.visibilityState === 'visible') void load()
  }, REFRESH_MS)
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') void load()
  })
}
