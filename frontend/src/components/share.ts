// The editor's Share button: copy this page's address (without the personal access token) to
// the clipboard, or show it in a field to copy by hand where the clipboard is not allowed.
import { h } from '../dom'
import { linkIcon } from '../icons'
import { popover, toast } from '../ui'

export function shareButton(): HTMLButtonElement {
  const button = h(
    'button.btn.ghost.share',
    { type: 'button', title: 'Copy a link to this document' },
    linkIcon(),
    h('span.share-label', {}, 'Share')
  )
  button.addEventListener('click', () => void copyLink(button))
  return button
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
