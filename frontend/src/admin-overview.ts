// The overview: this process (host, pid, version, uptime), charts of the last ten minutes from
// the metrics' series, and the cluster's processes with their load.
import type { AdminApi, ClusterProcess, Overview, Sample } from './admin-api'
import { Chart } from './admin-chart'
import { headCell } from './admin-table'
import { h } from './dom'
import { relativeTime } from './format'

const SPAN_S = 600

const count = (v: number): string => String(Math.round(v))
const rate = (v: number): string => (v < 10 ? v.toFixed(1) : String(Math.round(v)))
const millis = (v: number): string => (v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`)

export function uptime(seconds: number): string {
  const s = Math.floor(seconds)
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`
}

export class OverviewPanel {
  readonly el: HTMLElement
  private readonly process = h('div.process-line', { 'data-testid': 'process' })
  private readonly cluster = h('div', { 'data-testid': 'cluster' })
  private readonly charts: Array<[Chart, (s: Sample) => number | null]> = [
    [new Chart('Connections', count, 'chart-connections'), (s) => s.connections],
    [new Chart('Open documents', count, 'chart-rooms'), (s) => s.rooms],
    [new Chart('Messages in / s', rate, 'chart-messages-in'), (s) => s.messages_in_per_s],
    [new Chart('Messages out / s', rate, 'chart-messages-out'), (s) => s.messages_out_per_s],
    [new Chart('Updates / s', rate, 'chart-updates'), (s) => s.updates_per_s],
    [new Chart('Commit latency', millis, 'chart-commit-latency'), (s) => s.commit_latency_ms]
  ]

  constructor(private readonly api: AdminApi) {
    this.el = h(
      'section.admin-section',
      { 'data-testid': 'overview' },
      h('div.section-head', {}, h('h2', {}, 'Overview'), this.process),
      h('div.chart-grid', {}, ...this.charts.map(([chart]) => chart.el)),
      h('div.section-head', {}, h('h2', {}, 'Cluster')),
      this.cluster
    )
  }

  async refresh(): Promise<void> {
    const overview = await this.api.overview()
    this.showProcess(overview)
    for (const [chart, pick] of this.charts) {
      chart.show(
        overview.series.map((s) => [s.t, pick(s)]),
        SPAN_S
      )
    }
    this.showCluster(overview)
  }

  private showProcess({ process: p }: Overview): void {
    this.process.replaceChildren(
      h('span.pill-stat', {}, h('b', {}, String(p.connections)), p.connections === 1 ? ' connection' : ' connections'),
      h('span.pill-stat', {}, h('b', {}, String(p.rooms)), p.rooms === 1 ? ' open document' : ' open documents'),
      h('span.meta', {}, `${p.host} · pid ${p.pid} · v${p.version} · up ${uptime(p.uptime_s)}`)
    )
    if (!p.accepting) this.process.append(h('span.badge.bad', {}, 'shutting down'))
  }

  private showCluster({ cluster }: Overview): void {
    if (cluster.bus === null) {
      this.cluster.replaceChildren(
        h(
          'p.card.empty-note',
          {},
          'A single process: no bus is configured (COLLAB_BUS), so there is no cluster to show.'
        )
      )
      return
    }
    const rows = cluster.processes.map((p) => processRow(p))
    this.cluster.replaceChildren(
      h(
        'div.card.table-card',
        {},
        h('p.table-caption', {}, `${cluster.processes.length} processes on the ${cluster.bus} bus`),
        h(
          'table.admin-table',
          {},
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...['Process', 'Host', 'PID', 'Connections', 'Documents', 'Started', 'Last heard'].map(headCell)
            )
          ),
          h('tbody', {}, ...rows)
        )
      )
    )
  }
}

function processRow(p: ClusterProcess): HTMLElement {
  const dash = '—'
  return h(
    'tr',
    { 'data-testid': 'cluster-process' },
    h('td', {}, h('code', {}, p.id.slice(0, 8)), p.this_process ? h('span.badge', {}, 'this one') : null),
    h('td', {}, p.host ?? dash),
    h('td.num', {}, p.pid === null ? dash : String(p.pid)),
    h('td.num', {}, p.connections === null ? dash : String(p.connections)),
    h('td.num', {}, p.rooms === null ? dash : String(p.rooms)),
    h('td', {}, p.started_at_ms === null ? dash : relativeTime(p.started_at_ms)),
    h('td', {}, p.this_process ? 'now' : `${p.silent_ticks} s ago`)
  )
}
