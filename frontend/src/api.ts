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
