// The editor's breadcrumb: "Documents / folder/name", the last segment of the name in bold.
import { h } from '../dom'
import { withToken } from '../names'

export function crumbs(name: string): HTMLElement {
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
