// swagger-ui-dist ships no types: the one function the API docs page calls.
declare module 'swagger-ui-dist/swagger-ui-bundle.js' {
  interface SwaggerUIOptions {
    url: string
    dom_id: string
    deepLinking?: boolean
    presets?: unknown[]
    layout?: string
  }
  interface SwaggerUIBundleFn {
    (options: SwaggerUIOptions): unknown
    presets: { apis: unknown }
  }
  const SwaggerUIBundle: SwaggerUIBundleFn
  export default SwaggerUIBundle
}
