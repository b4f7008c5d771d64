/**
 * How a receiver verifies a delivery, in Node and in Python: shown in /docs (the OpenAPI
 * document's description) and, word for word, in the README.
 */
export const WEBHOOK_VERIFICATION_EXAMPLES = {
  node: `// Node: npm install standardwebhooks
import express from 'express';
import { Webhook } from 'standardwebhooks';

/** The route for imagegen's deliveries; \`secret\`: whsec_… from GET /v1/webhooks/secret, kept with your app's secrets. */
export function imagegenHooks(secret) {
  const hook = new Webhook(secret);
  const router = express.Router();
  router.post('/hooks', express.raw({ type: 'application/json' }), (req, res) => {
    const event = hook.verify(req.body.toString(), req.headers); // throws if forged or stale
    res.sendStatus(204);
    // event.type, event.data; dedupe by req.headers['webhook-id'], which stays the same on every retry
  });
  return router;
}`,
  python: `# Python: pip install standardwebhooks
import os
from flask import Flask, request
from standardwebhooks.webhooks import Webhook

app = Flask(__name__)
hook = Webhook(os.environ["IMAGEGEN_WEBHOOK_SECRET"])  # whsec_… from GET /v1/webhooks/secret

@app.post("/hooks")
def hooks():
    event = hook.verify(request.get_data(), dict(request.headers))  # raises if forged or stale
    # event["type"], event["data"]; dedupe by request.headers["webhook-id"], the same on every retry
    return "", 204`,
};

/** The section of the API's description that says how to verify a delivery. */
export const WEBHOOK_VERIFICATION_MD = `## Verifying a webhook delivery

Deliveries are signed per [Standard Webhooks](https://www.standardwebhooks.com/) (headers \`webhook-id\`, \`webhook-timestamp\`, \`webhook-signature\`) with your secret from \`GET /v1/webhooks/secret\`. After \`POST /v1/webhooks/secret/rotate\` the previous secret signs too for 24 h, so a receiver holding either verifies. Verify the raw body, before parsing it:

\`\`\`js
${WEBHOOK_VERIFICATION_EXAMPLES.node}
\`\`\`

\`\`\`python
${WEBHOOK_VERIFICATION_EXAMPLES.python}
\`\`\`
`;
