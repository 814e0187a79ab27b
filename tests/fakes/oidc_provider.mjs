// A real OpenID provider (panva's oidc-provider) on a loopback port, for the oauth2 source's tests.
// Usage: OIDC_PROVIDER_DIR=.../node_modules/oidc-provider node oidc_provider.mjs CONFIG.json
// (CONFIG: {"clients": [...], "resource": URL, "accessTokenTTL": S}). It listens on a free
// loopback port first (the issuer URL needs the port) and prints "listening ISSUER" once it serves. Clients are taken as given, so a test
// states each client's exact secret and auth method, and the provider refuses anything else.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";

const require = createRequire(process.env.OIDC_PROVIDER_DIR + "/package.json");
const { default: Provider } = await import(require.resolve("oidc-provider"));

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
let handler = (req, res) => { res.statusCode = 503; res.end(); };
const server = createServer((req, res) => handler(req, res));
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
const RESOURCE = config.resource || "https://gateway.example.test";

const provider = new Provider(issuer, {
  clients: config.clients,
  features: {
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true },
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A token for the one API this provider knows, as a signed JWT: the form gateways check.
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) throw new Error("unknown resource");
        return { scope: "ai.invoke", audience: RESOURCE, accessTokenTTL: config.accessTokenTTL || 600, accessTokenFormat: "jwt" };
      },
    },
  },
  scopes: ["openid", "offline_access", "ai.invoke"],
  ttl: { AccessToken: config.accessTokenTTL || 600, ClientCredentials: config.accessTokenTTL || 600 },
});
provider.proxy = false;
provider.on("server_error", (ctx, err) => console.error("server_error", err));
handler = provider.callback();
console.log(`listening ${issuer}`);
process.on("SIGTERM", () => server.close(() => process.exit(0)));
