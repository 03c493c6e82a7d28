// Human-friendly numbers: "3 min ago", "2.4 KB".

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'long' })

export function relativeTime(ms: number, now = Date.now()): string {
  const seconds = Math.round((ms - now) / 1000)
  const abs = Math.abs(seconds)
  if (abs < 45) return 'just now'
  const units: Array<[Intl.RelativeTimeFormatUnit, number]> = [
    ['minute', 60],
    ['hour', 3600],
    ['day', 86400],
    ['week', 604800],
    ['month', 2629800],
    ['year', 31557600]
  ]
  let chosen = units[0]
  for (const unit of units) {
    if (abs >= unit[1] * 0.9) chosen = unit
  }
  return rtf.format(Math.round(seconds / chosen[1]), chosen[0])
}

export function absoluteTime(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}

export function byteSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`
  const units = ['KB', 'MB', 'GB']
  let value = bytes
  let unit = ''
  for (const u of units) {
    value /= 1000
    unit = u
    if (value < 1000) break
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`
}

export const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`
