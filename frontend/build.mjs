// Build the editor into dist/: hashed bundles under dist/assets/ (served with a one-year cache),
// a .gz beside each text asset, dist/api-docs.html (the API's Swagger UI page, /api/docs),
// dist/admin.html (the operators' page, /admin), the embedding examples (dist/examples/*.html,
// /examples/...: a build of their own, so the editor's bundle does not change) and
// dist/index.html pointing at them (written last, so a half-finished build never looks complete
// to `make` or to the server).

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
  entryPoints: [path.join(here, 'src/main.ts'), path.join(here, 'src/apidocs.ts'), path.join(here, 'src/admin.ts')],
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

const common = {
  outdir: dist,
  entryNames: 'assets/[name]-[hash]',
  assetNames: 'assets/[name]-[hash]',
  bundle: true,
  target: ['es2020', 'chrome90', 'firefox90', 'safari14'],
  minify: true,
  sourcemap: 'linked',
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' }
}
// Monaco's editor worker, a classic script (module workers are newer than our targets), served
// from /assets like everything else: the Monaco example hands its URL to MonacoEnvironment.
// The examples have no source maps: Monaco's alone would be 17 MB in every wheel.
const worker = await build({
  ...common,
  sourcemap: false,
  entryPoints: { 'monaco-worker': path.join(here, 'node_modules/monaco-editor/esm/vs/editor/editor.worker.js') },
  format: 'iife'
})
const workerUrl = `/${path.relative(dist, path.resolve(Object.keys(worker.metafile.outputs).find((p) => p.endsWith('.js'))))}`
// y-monaco 0.1.6 imports monaco-editor/esm/vs/..., a path monaco-editor (0.55 on) no longer exports:
// it is the file at that path all the same.
const monacoDeepImports = {
  name: 'monaco-deep-imports',
  setup(b) {
    b.onResolve({ filter: /^monaco-editor\/esm\// }, (args) => ({ path: path.join(here, 'node_modules', args.path) }))
  }
}
const EXAMPLES = ['index', 'prosemirror', 'monaco', 'quill', 'tiptap']
const examples = await build({
  ...common,
  sourcemap: false,
  entryPoints: EXAMPLES.map((name) => path.join(here, `src/examples/${name}.ts`)),
  format: 'esm',
  loader: { '.ttf': 'file' },
  plugins: [monacoDeepImports],
  define: { ...common.define, MONACO_WORKER_URL: JSON.stringify(workerUrl.split(path.sep).join('/')) }
})

const builds = [result, worker, examples]
const outputs = builds.flatMap((b) => Object.keys(b.metafile.outputs)).map((p) => path.relative(dist, path.resolve(p)))
// The script and stylesheet built from one entry point, relative to dist/.
const bundleOf = (entry, { metafile } = result) => {
  const [out, meta] = Object.entries(metafile.outputs).find(([, o]) => o.entryPoint === entry) ?? []
  if (!out || !meta.cssBundle) throw new Error(`build produced no script/style for ${entry}: ${outputs.join(', ')}`)
  return [out, meta.cssBundle].map((p) => path.relative(dist, path.resolve(p)))
}
const [script, style] = bundleOf('src/main.ts')
const [docsScript, docsStyle] = bundleOf('src/apidocs.ts')
const [adminScript, adminStyle] = bundleOf('src/admin.ts')

for (const out of outputs) {
  if (/\.(js|css|map|txt|svg|ttf)$/.test(out)) {
    const file = path.join(dist, out)
    await writeFile(`${file}.gz`, gzipSync(await readFile(file), { level: 9 }))
  }
}

const page = async (template, pageStyle, pageScript) =>
  (await readFile(path.join(here, 'src', template), 'utf8'))
    .replace('%STYLE%', `/${pageStyle.split(path.sep).join('/')}`)
    .replace('%SCRIPT%', `/${pageScript.split(path.sep).join('/')}`)
await writeFile(path.join(dist, 'api-docs.html'), await page('api-docs.html', docsStyle, docsScript))
await writeFile(path.join(dist, 'admin.html'), await page('admin.html', adminStyle, adminScript))
await mkdir(path.join(dist, 'examples'), { recursive: true })
for (const name of EXAMPLES) {
  const [exampleScript, exampleStyle] = bundleOf(`src/examples/${name}.ts`, examples)
  const html = await page('examples/example.html', exampleStyle, exampleScript)
  await writeFile(path.join(dist, 'examples', `${name}.html`), html)
}
await writeFile(path.join(dist, 'index.html'), await page('index.html', style, script))

const size = (p) => result.metafile.outputs[Object.keys(result.metafile.outputs).find((k) => k.endsWith(p))].bytes
console.log(`built dist/${script} (${Math.round(size(script) / 1024)} KiB), dist/${style}`)
