// Who "I" am: a display name chosen once (a friendly random default), kept in localStorage, and a
// colour derived from a random id so it stays the same across visits and documents.

export interface User {
  id: string
  name: string
  color: string
  colorLight: string
  introSeen: boolean
}

const KEY = 'collab.user'
export const MAX_NAME_LENGTH = 40

// Saturated enough to read as a cursor, dark enough for white initials on top.
// biome-ignore format: a table, kept in rows
const PALETTE = [
  '#e5484d', '#f76b15', '#d6409f', '#8e4ec6', '#6e56cf', '#3e63dd',
  '#0090ff', '#00a2c7', '#12a594', '#30a46c', '#46a758', '#ad7f58'
]

// biome-ignore format: a table, kept in rows
const ADJECTIVES = [
  'Brave', 'Calm', 'Clever', 'Curious', 'Eager', 'Gentle', 'Happy', 'Jolly', 'Keen', 'Kind',
  'Lively', 'Lucky', 'Mellow', 'Merry', 'Nimble', 'Plucky', 'Quick', 'Quiet', 'Sunny', 'Witty'
]
// biome-ignore format: a table, kept in rows
const ANIMALS = [
  'Badger', 'Beaver', 'Crane', 'Dolphin', 'Falcon', 'Fox', 'Heron', 'Hedgehog', 'Koala', 'Lynx',
  'Marten', 'Otter', 'Owl', 'Panda', 'Puffin', 'Quokka', 'Robin', 'Seal', 'Tiger', 'Wren'
]

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]

export const randomName = (): string => `${pick(ADJECTIVES)} ${pick(ANIMALS)}`

function randomId(): string {
  const bytes = new Uint8Array(8)
  crypto.getRandomValues(bytes)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

export function colorFor(id: string): string {
  let hash = 2166136261
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i)
    hash = Math.imul(hash, 16777619)
  }
  return PALETTE[(hash >>> 0) % PALETTE.length]
}

export function cleanName(raw: string): string {
  return Array.from(raw.replace(/\s+/g, ' ').trim()).slice(0, MAX_NAME_LENGTH).join('')
}

/** Up to two letters: the first of the first and of the last word. */
export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean)
  if (words.length === 0) return '?'
  const first = Array.from(words[0])[0] ?? '?'
  const last = words.length > 1 ? (Array.from(words[words.length - 1])[0] ?? '') : ''
  return (first + last).toUpperCase()
}

function read(): Partial<User> {
  try {
    const raw = localStorage.getItem(KEY)
    const parsed: unknown = raw ? JSON.parse(raw) : {}
    return typeof parsed === 'object' && parsed !== null ? (parsed as Partial<User>) : {}
  } catch {
    return {} // storage disabled or corrupted: a fresh identity for this visit
  }
}

function write(user: User): void {
  try {
    const { id, name, introSeen } = user
    localStorage.setItem(KEY, JSON.stringify({ id, name, introSeen }))
  } catch {
    // private mode with storage disabled: the name lasts for this visit only
  }
}

export function loadUser(): User {
  const stored = read()
  const id = typeof stored.id === 'string' && stored.id ? stored.id : randomId()
  const name = typeof stored.name === 'string' && cleanName(stored.name) ? cleanName(stored.name) : randomName()
  const color = colorFor(id)
  const user: User = { id, name, color, colorLight: `${color}33`, introSeen: stored.introSeen === true }
  write(user)
  return user
}

export function saveUser(user: User): void {
  write(user)
}
