import type { Registry } from "prom-client";
import { listenHttp, type HttpListener, type HttpSecurity } from "./http.js";

/**
 * Serves `registry` on `GET /metrics` (Prometheus text format), to requests whose `Host` is
 * this server's or one of `security.allowedHosts` (others get 421), with TLS and tokens when set.
 */
export function serveMetrics(registry: Registry, host: string, port: number, security: HttpSecurity = {}): Promise<HttpListener> {
  return listenHttp(host, port, "metrics", (req, res) => {
    const route = new URL(req.url ?? "/", "http://localhost").pathname;
    if (route !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("metrics are on GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      (err: unknown) => {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end(`collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
  }, security);
}
