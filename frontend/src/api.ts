// The HTTP API as the pages use it. DocumentInfo is written by hand after GET /api/documents
// (collab/api/models.py DocumentSummary, in /api/openapi.json); tests/browser/test_frontend_contract.py
// asks a real server for the list and fails when its keys or their JSON types differ from this
// interface's fields.

/** One document in GET /api/documents. */
export interface DocumentInfo {
  name: string
  created_at_ms: number
  updated_at_ms: number
  size_bytes: number
  online: number // open connections to it on this server now
  versions: number // how many versions it has
}

/** One page of GET /api/documents (sorted by name); next_cursor null on the last page. */
export interface DocumentPage {
  documents: DocumentInfo[]
  next_cursor: string | null
}

/** The body of every error the API answers with. */
export interface ApiErrorBody {
  error: { code: string; message: string; status: number }
}

/** An error answer of the API: its status, stable code and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string
  ) {
    super(message)
  }
}

/** The ApiError of a failed response (its JSON body when it has one). */
export async function apiError(response: Response): Promise<ApiError> {
  try {
    const body = (await response.json()) as ApiErrorBody
    return new ApiError(response.status, body.error.code, body.error.message)
  } catch {
    return new ApiError(response.status, 'error', `HTTP ${response.status}`)
  }
}

const PAGE_SIZE = 1000
const MAX_PAGES = 20 // the start page shows at most 20,000 documents

/** The documents the caller may see (every page), 'denied' for a 401 or 403; throws on any other
 * failure. */
export async function listDocuments(token: string | null): Promise<DocumentInfo[] | 'denied'> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (token) headers.Authorization = `Bearer ${token}`
  const documents: DocumentInfo[] = []
  let cursor: string | null = null
  for (let page = 0; page < MAX_PAGES; page++) {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) })
    if (cursor) query.set('cursor', cursor)
    const response = await fetch(`/api/documents?${query}`, { headers })
    if (response.status === 401 || response.status === 403) return 'denied'
    if (!response.ok) throw await apiError(response)
    const body = (await response.json()) as DocumentPage
    documents.push(...body.documents)
    cursor = body.next_cursor
    if (!cursor) break
  }
  return documents
}

// ---- version history (GET/POST /api/documents/{name}/versions...) ------------------------------
// The shapes of issue 12's contract; test_frontend_contract.py checks Version and DiffSegment
// against a real server. A document name is ONE path segment, so its '/' is sent as %2F.

/** How a version came to be: saved after a pause in editing, named by someone, or around a restore. */
export type VersionKind = 'auto' | 'named' | 'restore'

/** One stored version of a document. */
export interface Version {
  id: number
  created_at_ms: number
  kind: VersionKind
  label: string | null
  authors: string[] // who edited since the previous version (token subjects, 'api', ...)
  size_bytes: number
}

/** A page of GET .../versions, newest first. */
export interface VersionPage {
  versions: Version[]
  next_cursor: string | null
}

/** The root types of a document's content. */
export type RootType = 'text' | 'map' | 'array' | 'xml'

/** GET .../versions/{id}: the content of the document as it was. */
export interface VersionContent {
  name: string
  version: Version
  content: Record<string, unknown>
  types: Record<string, RootType>
}

/** One run of a text field's diff; `author` wrote (or, for a delete, most likely removed) it. */
export interface DiffSegment {
  type: 'equal' | 'insert' | 'delete'
  text: string
  author: string | null
}

/** GET .../versions/{id}/diff?to=: each text field's changes from version `from` to `to` (null: now). */
export interface VersionDiff {
  name: string
  from: number
  to: number | null
  fields: Record<string, DiffSegment[]>
}

/** POST .../versions/{id}/restore: the version taken just before, and the one of the result. */
export interface Restored {
  name: string
  before: Version
  after: Version
}

const documentPath = (name: string): string => `/api/documents/${encodeURIComponent(name)}`

async function call<T>(method: string, path: string, token: string | null, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (token) headers.Authorization = `Bearer ${token}`
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  if (!response.ok) throw await apiError(response)
  return (await response.json()) as T
}

export function listVersions(
  name: string,
  token: string | null,
  page: { limit?: number; cursor?: string | null } = {}
): Promise<VersionPage> {
  const query = new URLSearchParams()
  if (page.limit) query.set('limit', String(page.limit))
  if (page.cursor) query.set('cursor', page.cursor)
  const qs = query.toString()
  return call('GET', `${documentPath(name)}/versions${qs ? `?${qs}` : ''}`, token)
}

export function getVersion(name: string, id: number, token: string | null): Promise<VersionContent> {
  return call('GET', `${documentPath(name)}/versions/${id}`, token)
}

/** What changed from version `id` to version `to`, or to the document now when `to` is null. */
export function diffVersion(name: string, id: number, to: number | null, token: string | null): Promise<VersionDiff> {
  const qs = to === null ? '' : `?to=${to}`
  return call('GET', `${documentPath(name)}/versions/${id}/diff${qs}`, token)
}

/** Take a named version of the document as it is now. */
export function createVersion(name: string, label: string | null, token: string | null): Promise<Version> {
  return call('POST', `${documentPath(name)}/versions`, token, label ? { label } : {})
}

/** Make the document look like version `id` again (a new edit every connected client receives). */
export function restoreVersion(name: string, id: number, token: string | null): Promise<Restored> {
  return call('POST', `${documentPath(name)}/versions/${id}/restore`, token)
}
