// The start page's form: type a document's name and open it. A name nobody has used yet is
// offered as "Create": the server makes a document the first time someone opens it.
import { h } from '../dom'
import { arrowIcon } from '../icons'
import { editorPath, withToken } from '../names'

export class OpenForm {
  readonly input = h('input.input.input-lg', {
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
  private readonly label = document.createTextNode('Open')
  readonly el = h(
    'form.open-form',
    { onsubmit: (e: Event) => this.open(e) },
    h('div.field', {}, h('span.field-prefix', { 'aria-hidden': 'true' }, '/d/'), this.input),
    h('button.btn.primary.btn-lg', { type: 'submit', 'data-testid': 'open-doc' }, this.label, arrowIcon())
  )

  /** The name typed so far, trimmed. */
  get name(): string {
    return this.input.value.trim()
  }

  /** Label the button "Create" (a new name) or "Open". */
  offerCreate(create: boolean): void {
    this.label.textContent = create ? 'Create' : 'Open'
  }

  private open(e: Event): void {
    e.preventDefault()
    if (!this.name) {
      this.input.focus()
      return
    }
    location.assign(withToken(editorPath(this.name)))
  }
}
