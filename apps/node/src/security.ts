/**
 * Reads what the `tls`, `auth` and `worker.token*` keys point at, relative to the config file.
 * A file that cannot be read or parsed stops the node with an error naming the key and the fix.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describeSystemError, isLoopbackHost, tokenEntrySchema, unusableConfig, type Logger, type TaskflowConfig, type TokenEntry } from "@taskflow/core";
import type { ServerSecurity, TlsMaterial } from "@taskflow/services";

function readKey(key: string, file: string, baseDir: string, fix: string): Buffer {
  const absolute = path.resolve(baseDir, file);
  try {
    return readFileSync(absolute);
  } catch (err) {
    throw unusableConfig(key, `cannot read ${absolute}: ${describeSystemError(err)}`, fix, err);
  }
}

/** The node's TLS files, read; undefined when `tls.cert` is not set. */
export function loadTls(config: TaskflowConfig, baseDir: string): TlsMaterial | undefined {
  const tls = config.tls;
  if (!tls?.cert || !tls.key) return undefined;
  return {
    cert: readKey("tls.cert", tls.cert, baseDir, "give the path of a PEM certificate chain, relative to the config file"),
    key: readKey("tls.key", tls.key, baseDir, "give the path of the PEM private key of tls.cert, relative to the config file"),
    ca: tls.ca === undefined ? undefined : readKey("tls.ca", tls.ca, baseDir, "give the path of a PEM CA certificate, relative to the config file"),
    requireClientCert: tls.requireClientCert,
  };
}

/** `auth.tokens` plus the entries of `auth.tokensFile`. */
export function loadTokens(config: TaskflowConfig, baseDir: string): TokenEntry[] {
  const tokens = [...config.auth.tokens];
  if (config.auth.tokensFile) {
    const fix = "make it a JSON array of entries as `taskflow token create` prints them";
    const text = readKey("auth.tokensFile", config.auth.tokensFile, baseDir, fix).toString("utf8");
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw unusableConfig("auth.tokensFile", `is not valid JSON: ${(err as Error).message}`, fix, err);
    }
    const parsed = tokenEntrySchema.array().safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw unusableConfig("auth.tokensFile", `entry ${issue.path.map(String).join(".")}: ${issue.message}`, fix);
    }
    tokens.push(...parsed.data);
  }
  const names = new Set<string>();
  for (const t of tokens) {
    if (names.has(t.name)) throw unusableConfig("auth.tokens", `the name "${t.name}" is used by two tokens`, "give every token its own name");
    names.add(t.name);
  }
  return tokens;
}

/** The control server's security, and a warning line when the node was told to bind in the open. */
export function serverSecurity(config: TaskflowConfig, baseDir: string, logger: Logger): ServerSecurity {
  const security = { tls: loadTls(config, baseDir), tokens: loadTokens(config, baseDir) };
  const open = [config.control.host, config.metrics.host, config.dashboard.host].some((h) => !isLoopbackHost(h));
  if (config.insecure && open && !(security.tls && security.tokens.length)) {
    logger.warn(
      { tls: Boolean(security.tls), tokens: security.tokens.length },
      'insecure: true: serving beyond loopback without TLS and tokens; anyone who reaches these ports can submit, read and cancel tasks and pose as a worker',
    );
  }
  return security;
}

/** The bearer token the worker role presents: `worker.token`, `worker.tokenFile`, or TASKFLOW_WORKER_TOKEN. */
export function workerToken(config: TaskflowConfig, baseDir: string): string | undefined {
  if (config.worker.token) return config.worker.token;
  if (config.worker.tokenFile) {
    const token = readKey("worker.tokenFile", config.worker.tokenFile, baseDir, "give the path of a file holding the worker token").toString("utf8").trim();
    if (!token) throw unusableConfig("worker.tokenFile", "the file is empty", "write the token printed by `taskflow token create --role worker` into it");
    return token;
  }
  return process.env["TASKFLOW_WORKER_TOKEN"] || undefined;
}

/** PEM paths (absolute) the worker role's processes connect with: the node's CA, and its certificate for mTLS. */
export interface WorkerTlsPaths {
  ca: string | undefined;
  cert: string | undefined;
  key: string | undefined;
}

export function workerTlsPaths(config: TaskflowConfig, baseDir: string): WorkerTlsPaths | undefined {
  const tls = config.tls;
  if (!tls) return undefined;
  const abs = (p: string | undefined) => (p === undefined ? undefined : path.resolve(baseDir, p));
  return { ca: abs(tls.ca), cert: abs(tls.cert), key: abs(tls.key) };
}
