// Documents with comments built by real Yjs, as the editor writes them (docs/comments.md), each
// printed as one JSON line: the update, and every comment's anchor as Yjs itself resolves it
// now (UTF-16 offsets) with the quoted text. tests/interop/test_comments.py reads them with
// collab/comments.py and must find the same.
import * as Y from 'yjs'

const b64 = (bytes) => Buffer.from(bytes).toString('base64')

function comment(doc, id, from, to, body, extra = {}) {
  const text = doc.getText('codemirror')
  const c = new Y.Map()
  c.set('field', 'codemirror')
  c.set('start', Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(text, from, 0)))
  c.set('end', Y.relativePositionToJSON(Y.createRelativePositionFromTypeIndex(text, to, -1)))
  c.set('quote', text.toString().slice(from, to))
  c.set('body', body)
  c.set('author', 'ann')
  c.set('created_ms', 1765000000000 + from)
  c.set('resolved', false)
  c.set('replies', new Y.Array())
  for (const [k, v] of Object.entries(extra)) c.set(k, v)
  doc.getMap('comments').set(id, c)
}

function resolved(doc) {
  const text = doc.getText('codemirror')
  const out = {}
  doc.getMap('comments').forEach((c, id) => {
    const abs = (k) => Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(c.get(k)), doc)
    const s = abs('start').index
    const e = Math.max(abs('end').index, s)
    out[id] = { start: s, end: e, quote: text.toString().slice(s, e) }
  })
  return out
}

function sync(a, b) {
  Y.applyUpdate(a, Y.encodeStateAsUpdate(b, Y.encodeStateVector(a)))
  Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)))
}

const cases = []
const emit = (name, doc) => {
  cases.push({ name, update: b64(Y.encodeStateAsUpdate(doc)), text: doc.getText('codemirror').toString(), comments: resolved(doc) })
}

{
  // plain: one comment on a word
  const d = new Y.Doc()
  d.getText('codemirror').insert(0, 'The quick brown fox')
  comment(d, 'c1', 4, 9, 'which quick?')
  emit('plain', d)
}
{
  // non-ASCII before and inside the anchor, in one block of text and split ones
  const d = new Y.Doc()
  const t = d.getText('codemirror')
  t.insert(0, 'héllo wörld 😀 énd')
  t.insert(0, 'ÄB')
  t.insert(8, 'éé')
  const s = t.toString()
  comment(d, 'c1', s.indexOf('wörld'), s.indexOf('wörld') + 5, 'umlaut')
  comment(d, 'c2', s.indexOf('😀'), s.indexOf('😀') + 2, 'emoji')
  comment(d, 'c3', s.indexOf('énd'), s.length, 'to the end')
  emit('non-ascii', d)
}
{
  // concurrent edits around and inside the anchor, by two clients, then synced
  const a = new Y.Doc()
  const b = new Y.Doc()
  a.getText('codemirror').insert(0, 'alpha beta gamma delta')
  sync(a, b)
  comment(a, 'c1', 6, 16, 'beta gamma')
  b.getText('codemirror').insert(0, 'ZZZ ') // before the anchor
  b.getText('codemirror').insert(14, '-x-') // inside it ("beta-x- gamma")
  a.getText('codemirror').insert(16, ' ömega') // right after it
  a.getText('codemirror').insert(6, '>') // right before it
  sync(a, b)
  emit('concurrent', a)
}
{
  // the commented text deleted, a resolved comment with replies, a removed comment
  const d = new Y.Doc()
  const t = d.getText('codemirror')
  t.insert(0, 'keep this, drop that, end')
  comment(d, 'gone', 11, 20, 'drop?')
  comment(d, 'kept', 0, 9, 'yes', { resolved: true, resolved_by: 'bob', resolved_ms: 1765000000999 })
  d.getMap('comments').get('kept').get('replies').push([{ id: 'r1', body: 'agreed', author: 'bob', created_ms: 1765000000500 }])
  comment(d, 'removed', 22, 25, 'x')
  d.getMap('comments').delete('removed')
  t.delete(11, 10)
  emit('deleted', d)
}
for (const c of cases) console.log(JSON.stringify(c))
