import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { isIP, type AddressInfo } from "node:net";
import { describeSystemError, systemErrorCode, unusableConfig } from "@taskflow/core";

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
  allowedHosts: readonly string[] = [],
): Promise<HttpListener & { readonly server: Server }> {
  const server = createServer((req, res) => {
    if (hostAllowed(req.headers.host, host, allowedHosts)) return handler(req, res);
    res
      .writeHead(421, { "content-type": "text/plain; charset=utf-8" })
      .end(`Host "${req.headers.host}" is not a name of this server; if it is, add it to ${what}.allowedHosts\n`);
  });
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
    url: `http://${shown}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
