// Validates the OpenAPI document on stdin with @apidevtools/swagger-parser (an ES module, so it
// runs in its own Node process rather than inside Jest). Exit 0 when valid, else 1 with the reason.
import SwaggerParser from '@apidevtools/swagger-parser';

let text = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) text += chunk;
try {
  const api = await SwaggerParser.validate(JSON.parse(text));
  process.stdout.write(`valid OpenAPI ${api.openapi}\n`);
} catch (err) {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
