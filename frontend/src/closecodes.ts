// The WebSocket close codes the server sends: a copy of CloseCode in collab/errors.py (the one
// table), which tests/browser/test_frontend_contract.py compares with this one, name by name.

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001, // server shutting down
  PROTOCOL_ERROR: 1002, // undecodable y-websocket message or Yjs update
  UNSUPPORTED_DATA: 1003, // text frame, unknown message type
  POLICY_VIOLATION: 1008, // rate limit, forbidden origin
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013, // slow consumer, server full
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404, // invalid document name
  IDLE_TIMEOUT: 4408,
  CLOSED_BY_ADMIN: 4000 // an operator closed it (the admin page or API): reconnect
} as const

/** Close codes after which reconnecting cannot help: the page stops and explains. Every other one
 * (4408 idle, 1001 restart, 1013 busy, ...) is retried. */
const TERMINAL: ReadonlySet<number> = new Set([CloseCode.UNAUTHORIZED, CloseCode.FORBIDDEN, CloseCode.NOT_FOUND])

export const isTerminal = (code: number): boolean => TERMINAL.has(code)
