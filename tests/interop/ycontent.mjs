// Documents built by real Yjs, printed as one JSON line each: the document as a v1 update
// (base64), and what Yjs itself reads from each root (toJSON, toDelta for texts, the type).
// tests/interop/test_content.py checks collab/content.py against these.
import * as Y from 'yjs'

const cases = []

const add = (name, build) => {
  const doc = new Y.Doc()
  doc.clientID = 1000 + cases.length
  const roots = build(doc)
  const json = {}
  const delta = {}
  const types = {}
  for (const [root, type] of Object.entries(roots)) {
    json[root] = type.toJSON()
    if (type instanceof Y.Text) {
      types[root] = 'text'
      delta[root] = type.toDelta()
    } else if (type instanceof Y.Map) types[root] = 'map'
    else if (type instanceof Y.Array) types[root] = 'array'
    else types[root] = 'xml'
  }
  const update = Buffer.from(Y.encodeStateAsUpdate(doc)).toString('base64')
  cases.push({ name, update, json, delta, types })
}

add('text with emoji, CJK and formatting', (doc) => {
  const t = doc.getText('codemirror')
  t.insert(0, 'héllo 😀 世界\nsecond line')
  t.format(0, 5, { bold: true })
  t.insert(8, '🎉', { italic: true })
  t.delete(1, 1)
  return { codemirror: t }
})

add('text whose first characters were deleted', (doc) => {
  const t = doc.getText('t')
  t.insert(0, 'abc')
  t.insert(0, 'X')
  t.delete(0, 2)
  return { t }
})

add('map with nested types and a deleted key', (doc) => {
  const m = doc.getMap('meta')
  m.set('title', 'Notes')
  m.set('count', 3)
  m.set('ratio', 0.25)
  m.set('flags', { a: [1, 2, null], b: true })
  m.set('gone', 'x')
  m.delete('gone')
  const inner = new Y.Map()
  m.set('inner', inner)
  inner.set('k', 'v')
  const text = new Y.Text()
  m.set('text', text)
  text.insert(0, 'nested')
  m.set('title', 'Notes, renamed')
  return { meta: m }
})

add('array of values and nested types', (doc) => {
  const a = doc.getArray('list')
  a.insert(0, [1, 'two', { three: 3 }, [4]])
  const m = new Y.Map()
  a.push([m])
  m.set('x', 1)
  a.delete(1, 1)
  a.insert(0, ['first'])
  return { list: a }
})

add('xml fragment as y-prosemirror writes it', (doc) => {
  const x = doc.getXmlFragment('prosemirror')
  const p = new Y.XmlElement('paragraph')
  p.setAttribute('textAlign', 'left')
  p.setAttribute('id', 'p1')
  const t = new Y.XmlText()
  p.insert(0, [t])
  const h = new Y.XmlElement('heading')
  h.setAttribute('level', '1')
  const ht = new Y.XmlText()
  h.insert(0, [ht])
  x.insert(0, [h, p])
  ht.insert(0, 'Title')
  t.insert(0, 'plain bold link')
  t.format(6, 4, { bold: {} })
  t.format(11, 4, { link: { href: 'https://example.com', target: '_blank' } })
  return { prosemirror: x }
})

add('every kind in one document', (doc) => {
  const t = doc.getText('text')
  t.insert(0, 'one')
  const m = doc.getMap('map')
  m.set('k', 'v')
  const a = doc.getArray('array')
  a.push([1, 2])
  const x = doc.getXmlFragment('xml')
  x.insert(0, [new Y.XmlElement('p')])
  const empty = doc.getText('emptied')
  empty.insert(0, 'gone')
  empty.delete(0, 4)
  return { text: t, map: m, array: a, xml: x, emptied: empty }
})

add('two clients typing into the same text', (doc) => {
  const other = new Y.Doc()
  other.clientID = 7
  doc.getText('t').insert(0, 'hello world')
  Y.applyUpdate(other, Y.encodeStateAsUpdate(doc))
  other.getText('t').insert(5, ', dear')
  doc.getText('t').insert(11, '!')
  Y.applyUpdate(doc, Y.encodeStateAsUpdate(other))
  return { t: doc.getText('t') }
})

for (const c of cases) process.stdout.write(JSON.stringify(c) + '\n')
