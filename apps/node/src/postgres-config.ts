/**
 * What the node adds to the Postgres store: `store.ssl` file paths read into PEM text, and the
 * store's open errors worded as config errors (`store.url: …; fix: …`) that say which of the
 * usual causes it was.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describeSystemError, unusableConfig, type TaskflowConfig, type TaskflowError } from "@taskflow/core";
// Types only: the store package (and pg) load on demand, when store.kind is "postgres".
import type { PostgresSslOptions } from "@taskflow/store-postgres";

/** `store.ssl` with its files read, or undefined when TLS is off. */
export function postgresSsl(config: TaskflowConfig, baseDir: string): PostgresSslOptions | undefined {
  const ssl = config.store.ssl;
  if (!ssl) return undefined;
  const read = (key: "ca" | "cert" | "key"): string | undefined => {
    const file = ssl[key];
    if (!file) return undefined;
    const full = path.resolve(baseDir, file);
    try {
      return readFileSync(full, "utf8");
    } catch (err) {
      throw unusableConfig(`store.ssl.${key}`, `cannot read ${full}: ${describeSystemError(err)}`, "give the path of a readable PEM file, relative to the config file", err);
    }
  };
  const out: PostgresSslOptions = { rejectUnauthorized: ssl.rejectUnauthorized };
  const ca = read("ca");
  const cert = read("cert");
  const key = read("key");
  if (ca) out.ca = ca;
  if (cert) out.cert = cert;
  if (key) out.key = key;
  if (ssl.servername) out.servername = ssl.servername;
  return out;
}

/** The Postgres store could not open: which key to look at, and the likely fix. */
export function postgresOpenError(err: unknown, url: string): TaskflowError {
  const sqlState = String((err as { cause?: { code?: unknown } }).cause?.code ?? "");
  const text = err instanceof Error ? err.message : String(err);
  const where = url.replace(/^(postgres(?:ql)?:\/\/[^:@/]*:)[^@/]*@/, "$1***@");
  let key = "store.url";
  let fix = "start the server or correct the host and port in store.url";
  if (sqlState.startsWith("28")) fix = "check the user in store.url and the password in PGPASSWORD or ~/.pgpass, and the server's pg_hba.conf";
  else if (sqlState === "3D000") fix = "create the database (createdb) or name an existing one in store.url";
  else if (sqlState === "42501") fix = "grant the user CREATE on the database, or create the schema store.schema for it";
  else if (/certificate|self[- ]signed|unable to verify/i.test(text)) {
    key = "store.ssl.ca";
    fix = "set store.ssl.ca to the CA certificate that signs the server's certificate";
  } else if (/does not support SSL/i.test(text)) {
    key = "store.ssl";
    fix = "turn TLS on in the server (ssl = on) or remove store.ssl";
  } else if (/FAILED_PRECONDITION|upgrade it/.test(text)) fix = "run a newer Taskflow, or point store.schema at another schema";
  return unusableConfig(key, `cannot open the Postgres store at ${where}: ${text.replace(/^postgres store: /, "")}`, fix, err);
}
