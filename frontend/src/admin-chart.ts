// Small line charts drawn in the browser from the overview's series (SVG, no library): one
// value over the last minutes, its current value and the scale's top.

const SVG = 'http://www.w3.org/2000/svg'
const WIDTH = 300
const HEIGHT = 64
const MIN_SPAN_S = 20 // the narrowest time range a chart spans

function svgEl<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag)
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value)
  return el
}

/** A "nice" top for the scale: 1, 2 or 5 times a power of ten, at least `value`. */
export function niceMax(value: number): number {
  if (!(value > 0)) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) return step * power
  }
  return 10 * power
}

/** Points of (t, value) -> the path of the line and of the area under it, in a WIDTH x HEIGHT
 * box, time running over `span` seconds up to `now`; null values break the line. */
export function linePaths(
  points: Array<[number, number | null]>,
  top: number,
  now: number,
  span: number
): { line: string; area: string } {
  const x = (t: number): number => Math.max(0, WIDTH - ((now - t) / span) * WIDTH)
  const y = (v: number): number => HEIGHT - (v / top) * (HEIGHT - 4)
  let line = ''
  let area = ''
  let run: Array<[number, number]> = []
  const flush = (): void => {
    if (run.length === 0) return
    const d = run.map(([px, py], i) => `${i ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join('')
    line += d
    area += `${d}L${run[run.length - 1][0].toFixed(1)},${HEIGHT}L${run[0][0].toFixed(1)},${HEIGHT}Z`
    run = []
  }
  for (const [t, v] of points) {
    if (v === null || Number.isNaN(v)) flush()
    else run.push([x(t), y(v)])
  }
  flush()
  return { line, area }
}

export class Chart {
  readonly el: HTMLElement
  private readonly value: HTMLElement
  private readonly scale: HTMLElement
  private readonly line: SVGPathElement
  private readonly area: SVGPathElement

  constructor(
    title: string,
    private readonly format: (v: number) => string,
    testId: string
  ) {
    const svg = svgEl('svg', {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      preserveAspectRatio: 'none',
      class: 'chart-svg',
      role: 'img',
      'aria-label': title
    })
    for (const frac of [0.25, 0.5, 0.75]) {
      const gy = String(HEIGHT - frac * (HEIGHT - 4))
      svg.append(svgEl('line', { x1: '0', x2: String(WIDTH), y1: gy, y2: gy, class: 'chart-rule' }))
    }
    this.area = svgEl('path', { class: 'chart-area', d: '' })
    this.line = svgEl('path', { class: 'chart-line', d: '', 'vector-effect': 'non-scaling-stroke' })
    svg.append(this.area, this.line)
    this.value = document.createElement('div')
    this.value.className = 'chart-value'
    this.value.dataset.testid = `${testId}-value`
    this.scale = document.createElement('span')
    this.scale.className = 'chart-scale'
    const head = document.createElement('div')
    head.className = 'chart-head'
    const label = document.createElement('span')
    label.className = 'chart-title'
    label.textContent = title
    head.append(label, this.scale)
    this.el = document.createElement('section')
    this.el.className = 'chart card'
    this.el.dataset.testid = testId
    this.el.append(head, this.value, svg)
  }

  /** Show the series (oldest first) over at most the last `maxSpan` seconds: the time it
   * covers, so a server that just started fills the width with what it has. */
  show(points: Array<[number, number | null]>, maxSpan: number): void {
    const values = points.map(([, v]) => v).filter((v): v is number => v !== null)
    const top = niceMax(Math.max(0, ...values))
    const now = points.length ? points[points.length - 1][0] : Date.now() / 1000
    const covered = points.length ? now - points[0][0] : 0
    const span = Math.min(maxSpan, Math.max(MIN_SPAN_S, covered))
    const { line, area } = linePaths(points, top, now, span)
    this.line.setAttribute('d', line)
    this.area.setAttribute('d', area)
    const last = points.length ? points[points.length - 1][1] : null
    this.value.textContent = last === null ? '—' : this.format(last)
    this.scale.textContent = `max ${this.format(top)} · last ${span < 90 ? `${Math.round(span)} s` : `${Math.round(span / 60)} min`}`
    this.el.dataset.points = String(values.length)
  }
}
