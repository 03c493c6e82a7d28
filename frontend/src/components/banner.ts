// The line under the editor's top bar when something is wrong with the connection: the server
// refused the document (with a terminal close code: retrying cannot help, so say why and offer a
// way out), the device is offline, or a reconnect is taking longer than a blip.
import { CloseCode } from '../closecodes'
import type { ConnectionWatch, Refusal } from '../connection'
import { h } from '../dom'
import { withToken } from '../names'

/** How long a reconnect may take before the banner explains it (not a flash on every blip). */
const SLOW_RECONNECT_MS = 4000

export class ConnectionBanner {
  readonly el = h('div.banner', { hidden: true, 'data-testid': 'banner', role: 'alert' })
  private showing = '' // the kind shown, '' when hidden

  constructor(private readonly name: string) {}

  /** After every change of the watch: a refusal, or offline, or nothing. */
  follow(watch: ConnectionWatch): void {
    const { refusal } = watch
    const kind = refusal ? `refused-${refusal.code}` : watch.connection === 'offline' ? 'offline' : ''
    if (kind === this.showing) return
    this.show(
      kind,
      refusal ? refusalBanner(refusal, this.name, () => watch.retry()) : kind === 'offline' ? offlineBanner() : []
    )
  }

  /** Every second: explain a slow reconnect, and take the explanation away once it is over. */
  tick(watch: ConnectionWatch): void {
    const slow =
      watch.connection === 'reconnecting' &&
      watch.downSince !== null &&
      Date.now() - watch.downSince > SLOW_RECONNECT_MS
    if (slow && this.showing === '') {
      this.show('reconnecting', reconnectingBanner())
    } else if (!slow && this.showing === 'reconnecting') {
      this.showing = ''
      this.el.hidden = true
    }
  }

  private show(kind: string, content: Node[]): void {
    this.showing = kind
    this.el.hidden = kind === ''
    this.el.dataset.kind = kind
    this.el.replaceChildren(...content)
  }
}

function refusalBanner(refusal: Refusal, name: string, retry: () => void): Node[] {
  const [heading, explanation] =
    refusal.code === CloseCode.UNAUTHORIZED
      ? [
          'Sign-in needed',
          'This server only opens documents for people with a valid access link or token. ' +
            'Open the link you were given, or ask the person who runs this server for access.'
        ]
      : refusal.code === CloseCode.FORBIDDEN
        ? [
            'No access to this document',
            `The server refused access to “${name}”. Ask the document’s owner to give you access.`
          ]
        : [
            'This document can’t be opened',
            `The server does not accept “${name}” as a document name. Pick a different name on the start page.`
          ]
  return [
    h(
      'div.banner-text',
      {},
      h('strong', {}, heading),
      h('span', {}, explanation),
      refusal.reason
        ? h('span.banner-reason', {}, `Server said: ${refusal.reason} (code ${refusal.code})`)
        : h('span.banner-reason', {}, `Close code ${refusal.code}`)
    ),
    h(
      'div.banner-actions',
      {},
      h('a.btn.ghost', { href: withToken('/') }, 'All documents'),
      h('button.btn.primary', { type: 'button', onclick: retry }, 'Try again')
    )
  ]
}

function offlineBanner(): Node[] {
  return [
    h(
      'div.banner-text',
      {},
      h('strong', {}, 'You’re offline.'),
      h('span', {}, 'Keep writing — your edits stay in this tab and sync when the connection returns.')
    )
  ]
}

function reconnectingBanner(): Node[] {
  return [
    h(
      'div.banner-text',
      {},
      h('strong', {}, 'Reconnecting to the server…'),
      h(
        'span',
        {},
        'Keep writing — your edits stay in this tab and sync as soon as it is back. Don’t close this tab until then.'
      )
    )
  ]
}
