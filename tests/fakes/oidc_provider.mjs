// A real OpenID provider (panva's oidc-provider) on a loopback port, for the oauth2 source's tests.
// Usage: OIDC_PROVIDER_DIR=.../node_modules/oidc-provider node oidc_provider.mjs CONFIG.json
// (CONFIG: {"clients": [...], "resources": [URL, ...], "accessTokenTTL": S}). It listens on a free
// loopback port first (the issuer URL needs the port) and prints "listening ISSUER" once it serves. Clients are taken as given, so a test
// states each client's exact secret and auth method, and the provider refuses anything else.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";

const require = createRequire(process.env.OIDC_PROVIDER_DIR + "/package.json");
const { default: Provider, errors } = await import(require.resolve("oidc-provider"));
const { jwtVerify, createRemoteJWKSet } = await import(require.resolve("jose"));

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
// A provider whose clock is off by config.clockOffset seconds: its tokens' iat/exp are skewed.
if (config.clockOffset) {
  const now = Date.now;
  Date.now = () => now() + config.clockOffset * 1000;
}
let handler = (req, res) => { res.statusCode = 503; res.end(); };
const server = createServer((req, res) => handler(req, res));
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
// The APIs this provider issues JWT access tokens for (RFC 8707 resource indicators).
const RESOURCES = config.resources || [config.resource || "https://gateway.example.test"];
const RESOURCE = RESOURCES[0];

const provider = new Provider(issuer, {
  clients: config.clients,
  features: {
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A token for the one API this provider knows, as a signed JWT: the form gateways check.
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        if (!RESOURCES.includes(resourceIndicator)) throw new Error("unknown resource");
        return { scope: "ai.invoke", audience: resourceIndicator, accessTokenTTL: config.accessTokenTTL || 600, accessTokenFormat: "jwt" };
      },
    },
  },
  scopes: ["openid", "offline_access", "ai.invoke"],
  extraTokenClaims: (ctx, token) => (token.exchangedSubject ? { subject: token.exchangedSubject } : undefined),
  ttl: {
    AccessToken: config.accessTokenTTL || 600,
    ClientCredentials: config.accessTokenTTL || 600,
    DeviceCode: config.deviceCodeTTL || 600,
  },
});
provider.proxy = false;
provider.on("server_error", (ctx, err) => console.error("server_error", err));
// One line per token issued, so tests and benchmarks can count upstream token requests.
provider.on("grant.success", (ctx) => console.error(`grant.success ${ctx.oidc.params.grant_type}`));
// RFC 8693 token exchange and the RFC 7523 jwt-bearer grant, which oidc-provider leaves to the
// deployment: the subject token (the assertion) must be a JWT this provider signed (checked against
// its own published keys) for the gateway, issued to a client that config.exchange lists for the
// asking client. The new token names that subject (introspection shows it as "subject").
const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
const refuse = (ctx, description) => {
  const err = new errors.InvalidGrant(description);
  err.error_description = description; // say why, as a test needs to see
  throw err;
};
async function issueFor(ctx, subject) {
  let payload;
  try {
    ({ payload } = await jwtVerify(subject || "", jwks, { issuer, audience: RESOURCE }));
  } catch (err) {
    return refuse(ctx, `subject token rejected: ${err.code || err.message}`);
  }
  const allowed = (config.exchange || {})[ctx.oidc.client.clientId] || [];
  if (!allowed.includes(payload.client_id)) return refuse(ctx, `subject ${payload.client_id} may not be exchanged`);
  const token = new ctx.oidc.provider.ClientCredentials({ client: ctx.oidc.client, scope: "ai.invoke" });
  token.exchangedSubject = payload.client_id; // becomes the token's "subject" claim (extraTokenClaims)
  ctx.body = {
    access_token: await token.save(),
    issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
    token_type: "Bearer",
    expires_in: token.expiration,
  };
}
provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
  const { subject_token: subject, subject_token_type: type } = ctx.oidc.params;
  if (type !== "urn:ietf:params:oauth:token-type:jwt" && type !== "urn:ietf:params:oauth:token-type:access_token") {
    return refuse(ctx, `unsupported subject_token_type ${type}`);
  }
  await issueFor(ctx, subject);
}, new Set(["subject_token", "subject_token_type", "scope", "audience"]));
provider.registerGrantType(JWT_BEARER, async (ctx) => {
  await issueFor(ctx, ctx.oidc.params.assertion);
}, new Set(["assertion", "scope", "audience"]));

handler = provider.callback();
console.log(`listening ${issuer}`);
process.on("SIGTERM", () => server.close(() => process.exit(0)));
