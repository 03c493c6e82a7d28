// Build the editor into dist/: hashed bundles under dist/assets/ (served with a one-year cache),
// a .gz beside each text asset, and dist/index.html pointing at them (written last, so a
// half-finished build never looks complete to `make` or to the server).

import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

const here = path.dirname(fileURLToPath(import.meta.url))
const dist = path.join(here, 'dist')

await rm(dist, { recursive: true, force: true })
await mkdir(dist, { recursive: true })

const result = await build({
  entryPoints: [path.join(here, 'src/main.ts')],
  outdir: dist,
  entryNames: 'assets/[name]-[hash]',
  assetNames: 'assets/[name]-[hash]',
  chunkNames: 'assets/[name]-[hash]',
  bundle: true,
  format: 'esm',
  target: ['es2020', 'chrome90', 'firefox90', 'safari14'],
  minify: true,
  sourcemap: 'linked',
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' }
})

const outputs = Object.keys(result.metafile.outputs).map((p) => path.relative(dist, path.resolve(p)))
const script = outputs.find((p) => p.endsWith('.js'))
const style = outputs.find((p) => p.endsWith('.css'))
if (!script || !style) throw new Error(`build produced no script/style: ${outputs.join(', ')}`)

for (const out of outputs) {
  if (/\.(js|css|map|txt|svg)$/.test(out)) {
    const file = path.join(dist, out)
    await writeFile(`${file}.gz`, gzipSync(await readFile(file), { level: 9 }))
  }
}

const template = await readFile(path.join(here, 'src/index.html'), 'utf8')
const html = template
  .replace('%STYLE%', `/${style.split(path.sep).join('/')}`)
  .replace('%SCRIPT%', `/${script.split(path.sep).join('/')}`)
await writeFile(path.join(dist, 'index.html'), html)

const size = (p) => result.metafile.outputs[Object.keys(result.metafile.outputs).find((k) => k.endsWith(p))].bytes
console.log(`built dist/${script} (${Math.round(size(script) / 1024)} KiB), dist/${style}`)
