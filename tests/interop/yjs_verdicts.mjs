// What stock Yjs (this directory's node_modules) does with many updates, for the differential
// test of collab/validate.py (tests/unit/test_validate_differential.py).
//
//   node yjs_verdicts.mjs corpus     print a JSON list of real updates Yjs writes, each as
//                                    {tag, u, s}: the update and the state it was made on (hex)
//   node yjs_verdicts.mjs verdicts   read JSON lines {u, s, f} (hex: the input, the state a peer
//                                    holds, a filler update supplying what the input refers to);
//                                    print one JSON line [fresh, filled, late] per input
//
// Each verdict is how `Y.applyUpdate` fared in one setting:
//   fresh   a new Y.Doc applies u
//   filled  a new Y.Doc applies s, then f, then u (what u depends on is there)
//   late    a new Y.Doc applies s, then u, then f (u waits as pending; f releases it)
// "ok", "pending" (structs or deletes left waiting for something missing), "throw: <error>" (an
// apply threw), "reencode: <error>" (the document could not be encoded and read again, as a
// peer's next sync needs), "prelude: <error>" (applying s or f threw before u: a harness bug),
// or null when the setting adds nothing (no s and no f).

import * as Y from 'yjs'
import readline from 'node:readline'

const bytes = hex => new Uint8Array(Buffer.from(hex, 'hex')) // its own buffer: no reading past it
const hex = u => Buffer.from(u).toString('hex')
const describe = e => `${e && e.name}: ${e && e.message}`

const settle = doc => {
  try {
    Y.applyUpdate(new Y.Doc(), Y.encodeStateAsUpdate(doc))
    Y.encodeStateVector(doc)
  } catch (e) {
    return 'reencode: ' + describe(e)
  }
  return doc.store.pendingStructs || doc.store.pendingDs ? 'pending' : 'ok'
}

const run = steps => {
  const doc = new Y.Doc()
  for (const [update, isInput] of steps) {
    if (update.length === 0 && !isInput) continue
    try {
      Y.applyUpdate(doc, update)
    } catch (e) {
      return (isInput ? 'throw: ' : 'prelude: ') + describe(e)
    }
  }
  return settle(doc)
}

const verdicts = ({ u, s, f }) => {
  const [input, state, fill] = [bytes(u), bytes(s || ''), bytes(f || '')]
  const fresh = run([[input, true]])
  if (!state.length && !fill.length) return [fresh, null, null]
  const filled = run([[state, false], [fill, false], [input, true]])
  const late = fill.length ? run([[state, false], [input, true], [fill, true]]) : null
  return [fresh, filled, late]
}

// -- the corpus: updates Yjs itself writes --------------------------------------------------------

let seed = 1
const rand = n => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 16) % n }
const pick = list => list[rand(list.length)]

const corpus = () => {
  const out = []
  const keep = (tag, update, state) => out.push({ tag, u: hex(update), s: state ? hex(state) : '' })
  // Every update a document emits, each with the state it was made on.
  const session = (tag, doc, edits) => {
    let before = Y.encodeStateAsUpdate(doc)
    doc.on('update', u => { keep(tag, u, before); before = Y.encodeStateAsUpdate(doc) })
    edits()
    keep(tag + ' full', Y.encodeStateAsUpdate(doc))
  }
  const words = ['a', 'é', '漢', '👍🏽', 'hello ', '\n', 'x'.repeat(40)]
  const values = [null, true, false, 0, -1, 64, -65, 2 ** 31, 2 ** 53 - 1, 1.5, -0, 1e300,
    2n ** 63n - 1n, '', 'é👋', new Uint8Array([0, 255]), [], {}, [1, [2, { a: [3] }]],
    { k: { '': null, '🔑': [true] } }]

  const text = new Y.Doc(); text.clientID = 3000000001
  session('text', text, () => {
    const t = text.getText('t')
    for (let i = 0; i < 40; i++) {
      const r = rand(10)
      if (r < 6 || t.length < 3) t.insert(rand(t.length + 1), pick(words), rand(4) ? undefined : { bold: true })
      else if (r < 8) t.delete(rand(t.length - 1), 1 + rand(2))
      else if (r < 9) t.format(rand(t.length - 2), 2, { italic: rand(2) ? true : null, color: '#f00' })
      else t.insertEmbed(rand(t.length + 1), { image: 'a.png', w: 10 })
    }
  })
  const maps = new Y.Doc(); maps.clientID = 17
  session('map', maps, () => {
    const m = maps.getMap('m')
    values.forEach((v, i) => m.set('k' + (i % 7), v))
    m.set('nested', new Y.Map([['x', 1], ['t', new Y.Text('inner')]]))
    m.get('nested').set('y', [1, 2])
    m.delete('k1')
    m.set('sub', new Y.Doc({ guid: 'sub-guid', meta: { n: 1 } }))
    m.set('auto', new Y.Doc({ guid: 'auto-guid', autoLoad: true }))
  })
  const arrays = new Y.Doc(); arrays.clientID = 2 ** 32 + 5
  session('array', arrays, () => {
    const a = arrays.getArray('a')
    a.insert(0, values.filter(v => v != null && typeof v !== 'bigint'))
    a.insert(2, [new Y.Array(), new Y.Map(), new Y.Text('t')])
    a.get(2).insert(0, ['in', 'side'])
    a.delete(1, 3)
    a.push([{ values }])
    a.delete(0, 1)
  })
  const xml = new Y.Doc(); xml.clientID = 1
  session('xml', xml, () => {
    const f = xml.getXmlFragment('x')
    const p = new Y.XmlElement('p')
    p.setAttribute('class', 'c')
    p.insert(0, [new Y.XmlText('inner')])
    f.insert(0, [p, new Y.XmlText('tail')])
    p.get(0).format(1, 2, { bold: true })
    f.insert(1, [new Y.XmlElement('hr')])
    f.delete(1, 1)
    xml.getXmlElement('el').setAttribute('k', 'v')
  })
  // Peers editing the same text and map, exchanging what they made: updates of several clients,
  // diffs against state vectors, merges and delete sets of other clients' items.
  const peers = [7, 2 ** 31 + 3, 2 ** 53 - 1].map(id => { const d = new Y.Doc(); d.clientID = id; return d })
  const sync = () => {
    const merged = Y.mergeUpdates(peers.map(d => Y.encodeStateAsUpdate(d)))
    peers.forEach(d => Y.applyUpdate(d, merged))
  }
  for (let round = 0; round < 4; round++) {
    for (const d of peers) {
      const before = Y.encodeStateAsUpdate(d)
      const sv = Y.encodeStateVector(d)
      d.transact(() => {
        const t = d.getText('shared')
        t.insert(rand(t.length + 1), pick(words))
        if (t.length > 4) t.delete(rand(t.length - 2), 2)
        d.getMap('meta').set('by', d.clientID)
      })
      keep('peer edit', Y.encodeStateAsUpdate(d, sv), before)
    }
    const a = peers[round % 3], b = peers[(round + 1) % 3]
    keep('peer diff', Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)), Y.encodeStateAsUpdate(b))
    sync()
  }
  keep('merged', Y.mergeUpdates(peers.map(d => Y.encodeStateAsUpdate(d))))
  // a delete set only: peer 0 deletes everything the others wrote
  const last = peers[0]
  const before = Y.encodeStateAsUpdate(last)
  const sv = Y.encodeStateVector(last)
  last.getText('shared').delete(0, last.getText('shared').length)
  keep('delete set', Y.encodeStateAsUpdate(last, sv), before)
  // garbage collected: deleted types become GC structs, deleted text Deleted items
  const gc = new Y.Doc(); gc.clientID = 99
  gc.getArray('a').insert(0, [new Y.Map(), new Y.Text('gone'), 'x'])
  gc.getArray('a').delete(0, 2)
  gc.getText('t').insert(0, 'abcdef')
  gc.getText('t').delete(1, 3)
  keep('gc', Y.encodeStateAsUpdate(gc))
  const nogc = new Y.Doc({ gc: false }); nogc.clientID = 98
  nogc.getArray('a').insert(0, [new Y.Map(), 'x'])
  nogc.getArray('a').delete(0, 1)
  keep('no gc', Y.encodeStateAsUpdate(nogc))
  // a pending update: b's edit applied without a's first (a's clocks missing)
  keep('merged docs', Y.mergeUpdates([Y.encodeStateAsUpdate(text), Y.encodeStateAsUpdate(xml)]))
  // a merge of updates with a gap between them: Skip structs
  const typed = new Y.Doc(); typed.clientID = 5
  const pieces = []
  typed.on('update', u => pieces.push(u))
  for (let i = 0; i < 12; i++) typed.getText('t').insert(rand(i + 1), pick(words))
  keep('skip', Y.mergeUpdates([...pieces.slice(0, 4), ...pieces.slice(7)]))
  // an XmlHook as Yjs writes it (with a name, which yrs does not read)
  const hook = new Y.Doc(); hook.clientID = 6
  hook.getXmlFragment('x').insert(0, [new Y.XmlHook('h'), new Y.XmlText('after')])
  keep('xml hook', Y.encodeStateAsUpdate(hook))
  // a bigger one: a long text typed at random places
  const big = new Y.Doc(); big.clientID = 424242
  for (let i = 0; i < 400; i++) big.getText('t').insert(rand(big.getText('t').length + 1), pick(words))
  keep('big', Y.encodeStateAsUpdate(big))
  return out
}

if (process.argv[2] === 'corpus') {
  console.log(JSON.stringify(corpus()))
} else if (process.argv[2] === 'verdicts') {
  const console_ = console.error
  console.error = () => {} // Yjs logs some oddities (e.g. a subdocument integrated twice)
  console.warn = () => {}
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  const out = []
  for await (const line of lines) {
    if (!line) continue
    out.push(JSON.stringify(verdicts(JSON.parse(line))))
    if (out.length >= 1000) { process.stdout.write(out.join('\n') + '\n'); out.length = 0 }
  }
  if (out.length) process.stdout.write(out.join('\n') + '\n')
  console.error = console_
} else {
  console.error('usage: node yjs_verdicts.mjs corpus|verdicts')
  process.exit(2)
}
