// Shared pieces of both pages: the top bar, avatars, popovers, toasts and the name editor.
import { h } from './dom'
import { logoMark } from './icons'
import { withToken } from './names'
import { cleanName, initials, MAX_NAME_LENGTH, type User } from './user'

export function brand(withWordmark = true): HTMLAnchorElement {
  return h(
    'a.brand',
    { href: withToken('/'), title: 'All documents', 'aria-label': 'Collab — all documents' },
    logoMark(),
    withWordmark ? h('span.wordmark', {}, 'Collab') : null
  )
}

export interface Person {
  name: string
  color: string
  me?: boolean
}

export function avatar(person: Person, size: 'sm' | 'md' = 'md'): HTMLSpanElement {
  return h(
    `span.avatar.avatar-${size}`,
    {
      style: { backgroundColor: person.color },
      title: person.me ? `${person.name} (you)` : person.name,
      'data-name': person.name,
      'data-me': person.me ? 'true' : undefined
    },
    initials(person.name)
  )
}

/** A floating panel under `anchor`; closes on Escape, on a click outside and on `close()`. */
export function popover(anchor: HTMLElement, content: HTMLElement): { close: () => void } {
  const panel = h('div.popover', { role: 'dialog' }, content)
  document.body.append(panel)
  const place = (): void => {
    const r = anchor.getBoundingClientRect()
    const width = panel.offsetWidth
    const left = Math.max(8, Math.min(window.innerWidth - width - 8, r.right - width))
    panel.style.top = `${r.bottom + 8 + window.scrollY}px`
    panel.style.left = `${left + window.scrollX}px`
  }
  place()
  const onDown = (e: Event): void => {
    if (!panel.contains(e.target as Node) && !anchor.contains(e.target as Node)) close()
  }
  const onKey = (e: KeyboardEvent): void => {
    if (e.key === 'Escape') close()
  }
  let open = true
  const close = (): void => {
    if (!open) return
    open = false
    panel.remove()
    document.removeEventListener('pointerdown', onDown, true)
    document.removeEventListener('keydown', onKey, true)
    window.removeEventListener('resize', place)
    anchor.setAttribute('aria-expanded', 'false')
  }
  document.addEventListener('pointerdown', onDown, true)
  document.addEventListener('keydown', onKey, true)
  window.addEventListener('resize', place)
  anchor.setAttribute('aria-expanded', 'true')
  return { close }
}

/** The "your name" form; calls onSave with the cleaned name. */
export function nameForm(user: User, onSave: (name: string) => void, onCancel: () => void): HTMLFormElement {
  const input = h('input.input', {
    type: 'text',
    value: user.name,
    maxLength: MAX_NAME_LENGTH,
    autocomplete: 'nickname',
    spellcheck: false,
    'aria-label': 'Your name',
    'data-testid': 'name-input'
  })
  const preview = avatar({ name: user.name, color: user.color }, 'md')
  input.addEventListener('input', () => {
    preview.textContent = initials(cleanName(input.value) || '?')
  })
  const form = h(
    'form.name-form',
    {
      onsubmit: (e: Event) => {
        e.preventDefault()
        const name = cleanName(input.value)
        if (name) onSave(name)
        else input.focus()
      }
    },
    h('label.form-label', {}, 'Your name'),
    h('p.form-help', {}, 'This is how others see you next to your cursor.'),
    h('div.name-row', {}, preview, input),
    h(
      'div.form-actions',
      {},
      h('button.btn.ghost', { type: 'button', onclick: onCancel }, 'Cancel'),
      h('button.btn.primary', { type: 'submit' }, 'Save')
    )
  )
  requestAnimationFrame(() => {
    input.focus()
    input.select()
  })
  return form
}

let toastTimer = 0

export function toast(message: string | Node, actions: Array<[string, () => void]> = [], ms = 4000): void {
  document.querySelector('.toast')?.remove()
  window.clearTimeout(toastTimer)
  const el = h('div.toast', { role: 'status' }, h('span.toast-text', {}, message))
  for (const [label, run] of actions) {
    el.append(
      h(
        'button.btn.link',
        {
          type: 'button',
          onclick: () => {
            el.remove()
            run()
          }
        },
        label
      )
    )
  }
  document.body.append(el)
  if (ms > 0) toastTimer = window.setTimeout(() => el.remove(), ms)
}
