// Who is here, and who I am to them: this tab's user in the awareness state (Identity), and the
// top bar's stack of avatars with its list of people and the name editor (PeopleButton).
import type { Awareness } from 'y-protocols/awareness'
import { h } from '../dom'
import { peopleIn, presenceList, presenceStack } from '../presence'
import { nameForm, popover } from '../ui'
import { saveUser, type User } from '../user'

export class Identity {
  private renames = 0

  constructor(
    readonly user: User,
    private readonly awareness: Awareness
  ) {
    this.publish()
  }

  /** Tell the others who this is. */
  publish(): void {
    // y-codemirror.next keeps a remote caret's DOM while its colour string is unchanged
    // (YRemoteCaretWidget.eq compares colours only), so a new name would not show on other
    // screens. Each rename flips the colour between '#rrggbb' and the identical '#rrggbbff'.
    const { id, name, color, colorLight } = this.user
    const shown = this.renames % 2 === 0 ? color : `${color}ff`
    this.awareness.setLocalStateField('user', { id, name, color: shown, colorLight })
  }

  rename(name: string): void {
    if (name !== this.user.name) this.renames++
    this.user.name = name
    saveUser(this.user)
    this.publish()
  }

  /** Leave at once when the tab goes away (the server would also drop us when the socket closes),
   * and come back with the tab when the browser restores it from its back/forward cache. */
  followTheTab(): void {
    window.addEventListener('pagehide', () => this.awareness.setLocalState(null))
    window.addEventListener('pageshow', (e) => {
      if (e.persisted) this.publish()
    })
  }

  /** True on this browser's first visit to an editor, which is remembered from then on. */
  firstVisit(): boolean {
    if (this.user.introSeen) return false
    this.user.introSeen = true
    saveUser(this.user)
    return true
  }
}

export class PeopleButton {
  readonly el = h('button.presence', {
    type: 'button',
    'data-testid': 'presence',
    'aria-haspopup': 'dialog',
    title: 'Who is here'
  })
  private panel: { close: () => void } | null = null

  /** `renamed` runs after the user saved a new name (the editor takes the focus back). */
  constructor(
    private readonly awareness: Awareness,
    private readonly me: Identity,
    private readonly renamed: () => void
  ) {
    awareness.on('change', () => this.render())
    this.render()
    this.el.addEventListener('click', () => {
      if (this.el.getAttribute('aria-expanded') === 'true') return this.panel?.close()
      this.panel = popover(
        this.el,
        presenceList(peopleIn(awareness), () => this.rename())
      )
    })
  }

  /** Open the name editor under the avatars. */
  rename(): void {
    this.panel?.close()
    this.panel = popover(
      this.el,
      nameForm(
        this.me.user,
        (name) => {
          this.me.rename(name)
          this.panel?.close()
          this.renamed()
        },
        () => this.panel?.close()
      )
    )
  }

  private render(): void {
    const people = peopleIn(this.awareness)
    this.el.replaceChildren(...presenceStack(people))
    this.el.setAttribute('aria-label', `${people.length} ${people.length === 1 ? 'person' : 'people'} here`)
  }
}
