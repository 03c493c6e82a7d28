// The start page's "you" in the top bar: your avatar and name; a click opens the name editor.
import { h } from '../dom'
import { avatar, nameForm, popover } from '../ui'
import { saveUser, type User } from '../user'

export function meButton(me: User): HTMLButtonElement {
  const button = h('button.avatar-button', { type: 'button', title: 'Change your name', 'aria-haspopup': 'dialog' })
  const render = (): void => {
    button.replaceChildren(avatar({ name: me.name, color: me.color, me: true }), h('span.me-name', {}, me.name))
  }
  render()
  button.addEventListener('click', () => {
    const pop = popover(
      button,
      nameForm(
        me,
        (name) => {
          me.name = name
          saveUser(me)
          render()
          pop.close()
        },
        () => pop.close()
      )
    )
  })
  return button
}
