// /api/docs: Swagger UI (npm swagger-ui-dist, bundled here: no CDN) rendering /api/openapi.json.
// A token typed into "Authorize" is sent as `Authorization: Bearer ...` by "Try it out".
import 'swagger-ui-dist/swagger-ui.css'
import SwaggerUIBundle from 'swagger-ui-dist/swagger-ui-bundle.js'

SwaggerUIBundle({
  url: '/api/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout'
})
