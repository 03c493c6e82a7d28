// Build the editor into dist/: hashed bundles under dist/assets/ (served with a one-year cache),
// a .gz beside each text asset, dist/api-docs.html (the API's Swagger UI page, /api/docs),
// dist/admin.html (the operators' page, /admin) and
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

const outputs = Object.keys(result.metafile.outputs).map((p) => path.relative(dist, path.resolve(p)))
// The script and stylesheet built from one entry point, relative to dist/.
const bundleOf = (entry) => {
  const [out, meta] = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint === entry) ?? []
  if (!out || !meta.cssBundle) throw new Error(`build produced no script/style for ${entry}: ${outputs.join(', ')}`)
  return [out, meta.cssBundle].map((p) => path.relative(dist, path.resolve(p)))
}
const [script, style] = bundleOf('src/main.ts')
const [docsScript, docsStyle] = bundleOf('src/apidocs.ts')
const [adminScript, adminStyle] = bundleOf('src/admin.ts')

for (const out of outputs) {
  if (/\.(js|css|map|txt|svg)$/.test(out)) {
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
await writeFile(path.join(dist, 'index.html'), await page('index.html', style, script))

const size = (p) => result.metafile.outputs[Object.keys(result.metafile.outputs).find((k) => k.endsWith(p))].bytes
console.log(`built dist/${script} (${Math.round(size(script) / 1024)} KiB), dist/${style}`)
