// The admin API (/api/admin, collab/api/admin.py) as the /admin page uses it. The shapes are
// collab/api/admin_models.py's; tests/browser/test_admin_browser.py drives them end to end.
import { apiError } from './api'

export interface Sample {
  t: number
  connections: number
  rooms: number
  messages_in_per_s: number
  messages_out_per_s: number
  updates_per_s: number
  commit_latency_ms: number | null
}

export interface ProcessInfo {
  pid: number
  host: string
  version: string
  started_at_ms: number
  uptime_s: number
  connections: number
  rooms: number
  accepting: boolean
}

export interface ClusterProcess {
  id: string
  this_process: boolean
  pid: number | null
  host: string | null
  connections: number | null
  rooms: number | null
  started_at_ms: number | null
  silent_ticks: number
}

export interface Overview {
  process: ProcessInfo
  series: Sample[]
  cluster: { bus: string | null; processes: ClusterProcess[] }
}

export interface AdminDocument {
  name: string
  created_at_ms: number
  updated_at_ms: number
  size_bytes: number
  log_rows: number
  versions: number
  online: number
  users: string[]
}

export interface AdminConnection {
  id: number
  user: string | null
  address: string
  protocol: string
  since_ms: number
  bytes_in: number
  bytes_out: number
  read_only: boolean
}

export interface DocumentDetail {
  document: AdminDocument
  connections: AdminConnection[]
}

/** The token was refused (401) or is not an admin's (403): the page asks for another. */
export class NeedToken extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message)
  }
}

const TOKEN_KEY = 'collab.adminToken'

/** The admin token: `?token=` in the address (kept for this tab, then taken out of the address
 * bar so it is not shared by a copied link), else the one this tab stored. */
export function initialToken(): string | null {
  const url = new URL(location.href)
  const given = url.searchParams.get('token')
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given)
    url.searchParams.delete('token')
    history.replaceState(null, '', url.pathname + url.search + url.hash)
  }
  return sessionStorage.getItem(TOKEN_KEY)
}

export function storeToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token)
  else sessionStorage.removeItem(TOKEN_KEY)
}

const segment = (name: string): string => encodeURIComponent(name)

export class AdminApi {
  constructor(public token: string | null) {}

  overview(): Promise<Overview> {
    return this.json('GET', '/api/admin/overview')
  }

  documents(
    prefix: string,
    cursor: string | null,
    limit = 50
  ): Promise<{ documents: AdminDocument[]; next_cursor: string | null }> {
    const query = new URLSearchParams({ prefix, limit: String(limit) })
    if (cursor) query.set('cursor', cursor)
    return this.json('GET', `/api/admin/documents?${query}`)
  }

  document(name: string): Promise<DocumentDetail> {
    return this.json('GET', `/api/admin/documents/${segment(name)}`)
  }

  closeConnection(name: string, id: number): Promise<void> {
    return this.json('DELETE', `/api/admin/documents/${segment(name)}/connections/${id}`)
  }

  closeConnections(name: string): Promise<{ closed: number }> {
    return this.json('DELETE', `/api/admin/documents/${segment(name)}/connections`)
  }

  compact(name: string): Promise<{ compacted: boolean; rows: number; bytes_before: number; bytes_after: number }> {
    return this.json('POST', `/api/admin/documents/${segment(name)}/compact`)
  }

  createVersion(name: string, label: string | null): Promise<{ id: number; label: string | null }> {
    return this.json('POST', `/api/admin/documents/${segment(name)}/versions`, { label })
  }

  delete(name: string): Promise<void> {
    return this.json('DELETE', `/api/admin/documents/${segment(name)}`)
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' }
    if (this.token) headers.Authorization = `Bearer ${this.token}`
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    if (response.status === 401 || response.status === 403) {
      const error = await apiError(response)
      throw new NeedToken(response.status, error.message)
    }
    if (!response.ok) throw await apiError(response)
    if (response.status === 204) return undefined as T
    return (await response.json()) as T
  }
}
