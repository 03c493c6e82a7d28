// Who is in the document now, from the awareness states (one entry per person: two tabs of the
// same browser profile share a user id and show once).
import type { Awareness } from 'y-protocols/awareness'
import { h } from './dom'
import { avatar, type Person } from './ui'

export interface AwarenessUser {
  id?: string
  name?: string
  color?: string
  colorLight?: string
}

export function peopleIn(awareness: Awareness): Person[] {
  const me = awareness.clientID
  const byId = new Map<string, Person>()
  const myState = awareness.getLocalState()
  const myUser = myState?.user as AwarenessUser | undefined
  const people: Person[] = []
  if (myUser?.name) {
    people.push({ name: myUser.name, color: myUser.color ?? '#888', me: true })
    byId.set(myUser.id ?? `client-${me}`, people[0])
  }
  const others = [...awareness.getStates().entries()].filter(([client]) => client !== me).sort(([a], [b]) => a - b)
  for (const [client, state] of others) {
    const user = state.user as AwarenessUser | undefined
    if (!user || typeof user.name !== 'string') continue
    const key = typeof user.id === 'string' ? user.id : `client-${client}`
    if (byId.has(key)) continue
    const person: Person = { name: user.name, color: typeof user.color === 'string' ? user.color : '#888' }
    byId.set(key, person)
    people.push(person)
  }
  return people
}

const MAX_SHOWN = 4

export function presenceStack(people: Person[]): HTMLElement[] {
  const shown = people.slice(0, people.length > MAX_SHOWN ? MAX_SHOWN - 1 : MAX_SHOWN)
  // Earlier avatars sit on top of later ones, so "you" (always first) is never covered.
  const items: HTMLElement[] = shown.map((p, i) => {
    const el = avatar(p)
    el.style.zIndex = String(MAX_SHOWN + 1 - i)
    return el
  })
  if (people.length > shown.length) {
    items.push(
      h(
        'span.avatar.avatar-md.avatar-more',
        { title: `${people.length - shown.length} more` },
        `+${people.length - shown.length}`
      )
    )
  }
  return items
}

export function presenceList(people: Person[], onRename: () => void): HTMLElement {
  return h(
    'div.people',
    {},
    h('div.people-head', {}, people.length === 1 ? 'Only you are here' : `${people.length} people here`),
    h(
      'ul.people-list',
      {},
      ...people.map((p) =>
        h('li', {}, avatar(p, 'sm'), h('span.person-name', {}, p.name), p.me ? h('span.you-tag', {}, 'you') : null)
      )
    ),
    h('button.btn.ghost.btn-block', { type: 'button', onclick: onRename }, 'Change your name')
  )
}
