import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describeSystemError, systemErrorCode, unusableConfig } from "@taskflow/core";

export interface HttpListener {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** `http://host:port` as a client on this host reaches it. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Starts an HTTP server on `host:port` (0 = any free port). `what` names the config section in
 * the error when it cannot listen (a config error: the node cannot start with that port).
 */
export async function listenHttp(
  host: string,
  port: number,
  what: string,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<HttpListener & { readonly server: Server }> {
  const server = createServer(handler);
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
