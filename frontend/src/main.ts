// Route on the path: `/` is the start page, `/d/<document name>` the editor.
import './styles.css'
import { nameFromPath } from './names'
import { renderEditor } from './pages/editor'
import { renderHome } from './pages/home'

const root = document.getElementById('app') as HTMLElement
const name = nameFromPath(location.pathname)
if (name) {
  renderEditor(root, name)
} else {
  if (location.pathname !== '/') history.replaceState(null, '', '/')
  renderHome(root)
}
