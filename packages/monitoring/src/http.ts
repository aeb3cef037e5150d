import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { isIP, type AddressInfo } from "node:net";
import { describeSystemError, isLoopbackHost, systemErrorCode, unusableConfig, type AuthRole } from "@taskflow/core";

/** TLS and tokens for an HTTP port. */
export interface HttpSecurity {
  /** Serve HTTPS with this certificate chain and key (PEM). @defaultValue plain HTTP */
  tls?: { cert: Buffer; key: Buffer };
  /**
   * The role of a presented token (`Authorization: Bearer <token>`, or Basic with the token as the
   * password, which browsers ask for), or undefined for none or an unknown one. Checked only when
   * the port is bound beyond loopback: reading needs `viewer` or `admin`, actions (POST) `admin`.
   * @defaultValue no tokens: everyone may read and act
   */
  roleOf?: (token: string) => AuthRole | undefined;
  /** Host names besides this server's own that requests may carry in `Host` (others get 421). @defaultValue [] */
  allowedHosts?: readonly string[];
}

/** The bearer token of a request: `Bearer <token>`, or the password of `Basic`. */
function presentedToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization ?? "";
  if (/^bearer /i.test(header)) return header.slice(7).trim() || undefined;
  if (/^basic /i.test(header)) {
    const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    return (colon >= 0 ? decoded.slice(colon + 1) : decoded) || undefined;
  }
  return undefined;
}

/** Answers 401/403 and returns false when `req` may not do what it asks. */
function allowed(req: IncomingMessage, res: ServerResponse, roleOf: (token: string) => AuthRole | undefined): boolean {
  const token = presentedToken(req);
  const role = token === undefined ? undefined : roleOf(token);
  if (!role) {
    res.writeHead(401, { "content-type": "text/plain; charset=utf-8", "www-authenticate": 'Basic realm="taskflow", charset="UTF-8"' });
    res.end(token === undefined ? "a viewer or admin token is required (Authorization: Bearer <token>)\n" : "the token is not valid here\n");
    return false;
  }
  const acting = req.method !== "GET" && req.method !== "HEAD";
  if (acting ? role !== "admin" : role !== "viewer" && role !== "admin") {
    res.writeHead(403, { "content-type": "text/plain; charset=utf-8" }).end(`role ${role} may not ${acting ? "act (cancel, drain): that needs admin" : "read this: that needs viewer or admin"}\n`);
    return false;
  }
  return true;
}

export interface HttpListener {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** `http://host:port` as a client on this host reaches it. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * The host name a `Host` header names, lower-case, without its port or a trailing dot; an IPv6
 * address without its brackets.
 */
function hostName(header: string): string {
  const name = header.startsWith("[") ? header.slice(1, header.indexOf("]") >>> 0) : header.replace(/:\d*$/, "");
  return name.toLowerCase().replace(/\.$/, "");
}

/**
 * Whether a request's `Host` header names this server: an IP address (a web page on another site
 * cannot make a browser send one for its own origin: that is what DNS rebinding needs), the bound
 * host, `localhost`, or a name in `allowedHosts`. A request without the header (HTTP/1.0) passes.
 */
export function hostAllowed(header: string | undefined, host: string, allowedHosts: readonly string[]): boolean {
  if (header === undefined) return true;
  const name = hostName(header);
  if (!name) return false;
  if (isIP(name) || name === "localhost" || name === hostName(host)) return true;
  return allowedHosts.some((allowed) => hostName(allowed) === name);
}

/**
 * Starts an HTTP server on `host:port` (0 = any free port). `what` names the config section in
 * the error when it cannot listen (a config error: the node cannot start with that port).
 * Requests whose `Host` header is not this server's ({@link hostAllowed}) get 421.
 */
export async function listenHttp(
  host: string,
  port: number,
  what: string,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  security: HttpSecurity = {},
): Promise<HttpListener & { readonly server: Server }> {
  const { roleOf, tls, allowedHosts = [] } = security;
  const authorized = roleOf && !isLoopbackHost(host) ? (req: IncomingMessage, res: ServerResponse) => allowed(req, res, roleOf) && handler(req, res) : handler;
  // The Host check comes first: a DNS-rebinding page must learn nothing, not even a 401.
  const guarded = (req: IncomingMessage, res: ServerResponse) => {
    if (hostAllowed(req.headers.host, host, allowedHosts)) return authorized(req, res);
    res
      .writeHead(421, { "content-type": "text/plain; charset=utf-8" })
      .end(`Host "${req.headers.host}" is not a name of this server; if it is, add it to ${what}.allowedHosts\n`);
  };
  const server: Server = tls ? (createHttpsServer({ cert: tls.cert, key: tls.key }, guarded) as unknown as Server) : createServer(guarded);
  // Keep-alive sockets (and event streams) must not hold the node open at shutdown.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  }).catch((err: Error) => {
    const hostFault = systemErrorCode(err) === "EADDRNOTAVAIL" || systemErrorCode(err) === "ENOTFOUND";
    throw unusableConfig(
      `${what}.${hostFault ? "host" : "port"}`,
      `cannot listen on ${host}:${port}: ${describeSystemError(err)}`,
      hostFault ? 'use an address of this host such as "127.0.0.1"' : `choose another ${what}.port (0 picks a free one) or set ${what}.enabled to false`,
      err,
    );
  });
  const bound = (server.address() as AddressInfo).port;
  const shown = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : host.includes(":") ? `[${host}]` : host;
  return {
    server,
    port: bound,
    url: `${tls ? "https" : "http"}://${shown}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
