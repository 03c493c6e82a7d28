// The logo mark and the few icons the UI uses, inline so the page needs no extra requests.
import { svg } from './dom'

export const logoMark = (): SVGElement =>
  svg(`<svg class="logo-mark" viewBox="0 0 32 32" aria-hidden="true">
    <rect width="32" height="32" rx="8" fill="var(--accent)"/>
    <path d="M21.5 11.2a7 7 0 1 0 0 9.6" fill="none" stroke="#fff" stroke-width="3.2" stroke-linecap="round"/>
    <circle cx="22.6" cy="16" r="2.3" fill="#fbbf24"/>
  </svg>`)

export const linkIcon = (): SVGElement =>
  svg(
    `<svg viewBox="0 0 20 20" aria-hidden="true" class="icon"><path fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" d="M8.5 11.5a3.5 3.5 0 0 0 5 0l2.5-2.5a3.5 3.5 0 0 0-5-5l-1 1M11.5 8.5a3.5 3.5 0 0 0-5 0L4 11a3.5 3.5 0 0 0 5 5l1-1"/></svg>`
  )

export const docIcon = (): SVGElement =>
  svg(
    `<svg viewBox="0 0 20 20" aria-hidden="true" class="icon"><path fill="none" stroke="currentColor" stroke-width="1.6" stroke-linejoin="round" d="M5 2.75h6.5L15.25 6.5v10.75H5z"/><path fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round" d="M11.25 3v3.75H15M7.75 10.5h4.5M7.75 13.5h4.5"/></svg>`
  )

export const arrowIcon = (): SVGElement =>
  svg(
    `<svg viewBox="0 0 20 20" aria-hidden="true" class="icon"><path fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" d="M4 10h11m-4.5-4.5L15 10l-4.5 4.5"/></svg>`
  )

export const historyIcon = (): SVGElement =>
  svg(
    `<svg viewBox="0 0 20 20" aria-hidden="true" class="icon"><path fill="none" stroke="currentColor" stroke-width="1.7" stroke-linecap="round" stroke-linejoin="round" d="M3.5 10a6.5 6.5 0 1 0 1.9-4.6L3.5 7.3M3.5 3.5v3.8h3.8M10 6.5V10l2.5 1.75"/></svg>`
  )

export const closeIcon = (): SVGElement =>
  svg(
    `<svg viewBox="0 0 20 20" aria-hidden="true" class="icon"><path fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" d="M5 5l10 10M15 5L5 15"/></svg>`
  )

export const backIcon = (): SVGElement =>
  svg(
    `<svg viewBox="0 0 20 20" aria-hidden="true" class="icon"><path fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" d="M16 10H5m4.5-4.5L5 10l4.5 4.5"/></svg>`
  )

export const commentIcon = (): SVGElement =>
  svg(
    `<svg viewBox="0 0 20 20" aria-hidden="true" class="icon"><path fill="none" stroke="currentColor" stroke-width="1.7" stroke-linejoin="round" d="M4 4.5h12a1 1 0 0 1 1 1V13a1 1 0 0 1-1 1H9l-3.5 3v-3H4a1 1 0 0 1-1-1V5.5a1 1 0 0 1 1-1z"/></svg>`
  )
