// The HTTP API as the pages use it. DocumentInfo is written by hand after GET /api/documents
// (list_documents on the server); tests/browser/test_frontend_contract.py asks a real server for
// the list and fails when its keys or their JSON types differ from this interface's fields.

/** One document in GET /api/documents. */
export interface DocumentInfo {
  name: string
  created_at_ms: number
  updated_at_ms: number
  size_bytes: number
  online: number // open connections to it on this server now
}

/** The documents the caller may see, 'denied' for a 401 or 403; throws on any other failure. */
export async function listDocuments(token: string | null): Promise<DocumentInfo[] | 'denied'> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (token) headers.Authorization = `Bearer ${token}`
  const response = await fetch('/api/documents', { headers })
  if (response.status === 401 || response.status === 403) return 'denied'
  if (!response.ok) throw new Error(`HTTP ${response.status}`)
  return (await response.json()) as DocumentInfo[]
}
