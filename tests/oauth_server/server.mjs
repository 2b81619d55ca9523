// A real OpenID Connect provider for the portal's OAuth tests, on 127.0.0.1 only.
//
//   node server.mjs '<json config>'
//
// The config names the redirect URIs the portal will use and a client per client
// authentication method. The server listens on a free port and prints one line,
// `ready <issuer>`, when it answers. PKCE (S256) is required, refresh tokens are issued,
// and the login and consent pages are the provider's development interactions.
import http from "node:http";
import Provider from "oidc-provider";

const config = JSON.parse(process.argv[2]);
const server = http.createServer();

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: config.clients.map((client) => ({
      client_id: client.clientId,
      client_secret: client.clientSecret,
      token_endpoint_auth_method: client.method,
      redirect_uris: config.redirectUris,
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
    })),
    pkce: { methods: ["S256"], required: () => true },
    scopes: ["openid", "offline_access", "profile", "email"],
    features: { devInteractions: { enabled: true } },
    // Every client that may refresh gets a refresh token, offline_access or not.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed("refresh_token"),
    ttl: { AccessToken: 3600, AuthorizationCode: 60, RefreshToken: 86400,
           Interaction: 600, Session: 600, Grant: 86400 },
    cookies: { keys: ["test-cookie-key-not-secret"] },
  });
  server.on("request", provider.callback());
  process.stdout.write(`ready ${issuer}\n`);
});

process.on("SIGTERM", () => server.close(() => process.exit(0)));
