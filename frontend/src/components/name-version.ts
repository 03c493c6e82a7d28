// "Name this version": a button that opens a small form for the label (Escape or Cancel close it).
import { h } from '../dom'

const MAX_LABEL = 200 // the API's limit

export class NameVersion {
  private readonly input = h('input.input', {
    type: 'text',
    maxLength: MAX_LABEL,
    placeholder: 'e.g. Sent to the client',
    'aria-label': 'Version name',
    'data-testid': 'version-label'
  })
  private readonly submit = h('button.btn.primary', { type: 'submit', 'data-testid': 'save-version' }, 'Save version')
  private readonly form = h(
    'form.history-name-form',
    {
      hidden: true,
      onsubmit: (e: Event) => {
        e.preventDefault()
        void this.save()
      }
    },
    h('label.form-label', {}, 'Name this version'),
    h('p.form-help', {}, 'Saves the document as it is now, under this name.'),
    this.input,
    h(
      'div.form-actions',
      {},
      h('button.btn.ghost', { type: 'button', onclick: () => this.stop() }, 'Cancel'),
      this.submit
    )
  )
  private readonly button = h(
    'button.btn.primary.btn-block',
    { type: 'button', 'data-testid': 'name-version', onclick: () => this.start() },
    'Name this version'
  )
  readonly el = h('div.name-version', {}, this.button, this.form)

  /** `onSave(label or null)` resolves true when the version was saved (the form then closes). */
  constructor(private readonly onSave: (label: string | null) => Promise<boolean>) {}

  get isOpen(): boolean {
    return !this.form.hidden
  }

  start(): void {
    this.form.hidden = false
    this.button.hidden = true
    this.input.value = ''
    this.input.focus()
  }

  stop(): void {
    this.form.hidden = true
    this.button.hidden = false
    this.button.focus()
  }

  private async save(): Promise<void> {
    this.submit.disabled = true
    try {
      if (await this.onSave(this.input.value.trim() || null)) this.stop()
    } finally {
      this.submit.disabled = false
    }
  }
}
