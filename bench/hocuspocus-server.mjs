#!/usr/bin/env node
// The reference Hocuspocus server for the bench: @hocuspocus/server 4.x from npm with its SQLite
// extension (@hocuspocus/extension-sqlite: the whole document state stored per debounced change),
// so that both servers persist what they are sent. No auth hook: every token is accepted.
//
//   PORT=1234 DATABASE=/tmp/hp.sqlite node hocuspocus-server.mjs
import { SQLite } from '@hocuspocus/extension-sqlite'
import { Server } from '@hocuspocus/server'

const server = new Server({
  port: Number(process.env.PORT || 1234),
  address: process.env.HOST || '127.0.0.1',
  quiet: true,
  extensions: [new SQLite({ database: process.env.DATABASE || 'hocuspocus.sqlite' })]
})
await server.listen()
process.stderr.write(`hocuspocus ${process.env.npm_package_version || ''} listening on ${server.URL}\n`)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    await server.destroy()
    process.exit(0)
  })
}
