// Document names <-> URL paths. Names may contain '/' and any Unicode; each path segment is
// percent-encoded on its own so '/' stays a separator and everything else round-trips.

export const encodeName = (name: string): string => name.split('/').map(encodeURIComponent).join('/')

export function decodeName(path: string): string {
  return path
    .split('/')
    .map((segment) => {
      try {
        return decodeURIComponent(segment)
      } catch {
        return segment // a stray '%' typed into the address bar: keep it as written
      }
    })
    .join('/')
}

export const editorPath = (name: string): string => `/d/${encodeName(name)}`

/** The document name of an editor URL path (`/d/<name>`), or null for any other page. */
export function nameFromPath(pathname: string): string | null {
  if (!pathname.startsWith('/d/')) return null
  return decodeName(pathname.slice(3))
}

/** A fresh name for "start a blank document": untitled-<date>-<4 letters>. */
export function untitledName(now = new Date()): string {
  const day = now.toISOString().slice(0, 10)
  const suffix = Math.random().toString(36).slice(2, 6)
  return `untitled-${day}-${suffix}`
}

/** The access token this page was opened with (`?token=`), if any. */
export const pageToken = (): string | null => new URLSearchParams(location.search).get('token')

/** A path on this server that keeps the page's access token, so that moving between the start
 * page and the editor works on a server that needs one. (Never used for links meant to be
 * shared: a token is personal.) */
export function withToken(path: string): string {
  const token = pageToken()
  return token ? `${path}?token=${encodeURIComponent(token)}` : path
}
