/**
 * A throwaway PostgreSQL server for tests: `initdb` into a temp folder, `pg_ctl start` on a free
 * port of 127.0.0.1 with its Unix socket in that folder, and a `stop()` that stops it and removes
 * the folder. It is a real server with its default durability settings (fsync on), so what a test
 * proves about commits holds for a production server too.
 *
 * Needs the PostgreSQL server binaries (Debian: `apt-get install postgresql`, which
 * `scripts/test-deps.sh` does as part of `npm test`). They are found through
 * `TASKFLOW_PG_BINDIR`, then `/usr/lib/postgresql/<newest>/bin`, then `pg_config --bindir`.
 * initdb refuses to run as root, so as root the server runs as the `postgres` OS user (made by
 * the Debian package) and the temp folder is handed to it.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Options of {@link startTestPostgres}. */
export interface TestPostgresOptions {
  /**
   * Serve TCP connections with TLS only, with this certificate and key (PEM text): pg_hba then
   * has `hostssl` lines and no `host` lines, so a client without TLS is refused.
   * @defaultValue none (plain TCP)
   */
  tls?: { cert: string; key: string };
  /**
   * How long to wait for the server to accept connections, in ms.
   * @defaultValue 60000
   */
  startTimeoutMs?: number;
}

/** A running throwaway server. */
export interface TestPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication). */
  url: string;
  port: number;
  /** The folder holding the data directory, the Unix socket and the server log. */
  dir: string;
  /** The server's log so far, for failure messages. */
  log(): string;
  /** Stops the server (fast shutdown) and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
  /** Stops the server at once, as a crash would (`pg_ctl stop -m immediate`), keeping its folder. */
  crash(): Promise<void>;
  /** Starts it again on the same port after {@link TestPostgres.crash}. */
  restart(): Promise<void>;
}

/** The folder holding `initdb` and `pg_ctl`, or an error saying what to install. */
export function postgresBinDir(): string {
  const candidates: string[] = [];
  const fromEnv = process.env["TASKFLOW_PG_BINDIR"];
  if (fromEnv) candidates.push(fromEnv);
  const debian = "/usr/lib/postgresql";
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => join(debian, v, "bin")));
  }
  try {
    candidates.push(execFileSync("pg_config", ["--bindir"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
  } catch {
    // No pg_config on PATH: the other candidates decide.
  }
  const found = candidates.find((dir) => existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl")));
  if (!found) {
    throw new Error(
      `PostgreSQL server binaries (initdb, pg_ctl) not found in ${candidates.join(", ") || "/usr/lib/postgresql/*/bin"}; ` +
        "install them (Debian: apt-get install -y postgresql) or set TASKFLOW_PG_BINDIR",
    );
  }
  return found;
}

/** uid and gid of the `postgres` OS user, when this process is root (initdb refuses root). */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  if (!line) throw new Error("running as root, and there is no postgres OS user to run PostgreSQL as (initdb refuses root); install Debian's postgresql package, which makes it");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface Run {
  code: number | null;
  output: string;
}

function run(file: string, args: string[], user: { uid: number; gid: number } | undefined): Promise<Run> {
  return new Promise((resolve, reject) => {
    // uid/gid instead of runuser or su: no shell, no PAM, and the same on any distribution.
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"], ...(user ?? {}), env: { ...process.env, LC_ALL: "C.UTF-8" } });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, output }));
  });
}

/** Servers started by this process, stopped at exit even when a test forgot to (or crashed). */
const running = new Set<{ pgCtl: string; data: string; user: { uid: number; gid: number } | undefined }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const s of running) spawnSync(s.pgCtl, ["-D", s.data, "-m", "immediate", "-w", "stop"], { stdio: "ignore", ...(s.user ?? {}) });
  });
}

/**
 * Starts a new PostgreSQL server in a temp folder (a few seconds: most of it is initdb).
 *
 * @example
 * ```ts
 * const pg = await startTestPostgres();
 * after(() => pg.stop());
 * const store = new PostgresTaskStore({ url: pg.url });
 * ```
 */
export async function startTestPostgres(options: TestPostgresOptions = {}): Promise<TestPostgres> {
  const bin = postgresBinDir();
  const user = serverUser();
  // The postgres user must reach the folder: a private TMPDIR (such as one under /root) would not do.
  const base = user && (statSync(tmpdir()).mode & 0o001) === 0 ? "/tmp" : tmpdir();
  const dir = mkdtempSync(join(base, "taskflow-pg-"));
  const data = join(dir, "data");
  const logFile = join(dir, "server.log");
  const pgCtl = join(bin, "pg_ctl");
  const entry = { pgCtl, data, user };
  try {
    if (user) chownSync(dir, user.uid, user.gid);
    chmodSync(dir, 0o700);
    // --no-sync: only initdb skips syncing its template files (seconds on a busy disk); the
    // server itself runs with fsync on.
    const init = await run(join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], user);
    if (init.code !== 0) throw new Error(`initdb failed (exit ${init.code}):\n${init.output}`);
    if (options.tls) {
      const tlsDir = join(data, "tls");
      mkdirSync(tlsDir);
      writeFileSync(join(tlsDir, "server.crt"), options.tls.cert);
      writeFileSync(join(tlsDir, "server.key"), options.tls.key, { mode: 0o600 });
      if (user) for (const f of ["", "server.crt", "server.key"]) chownSync(join(tlsDir, f), user.uid, user.gid);
      writeFileSync(
        join(data, "postgresql.auto.conf"),
        `ssl = on\nssl_cert_file = '${join(tlsDir, "server.crt")}'\nssl_key_file = '${join(tlsDir, "server.key")}'\n`,
        { flag: "a" },
      );
      writeFileSync(join(data, "pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n");
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  let port = 0;
  const start = async () => {
    // Another process can take a free port between the check and the bind: try a few.
    let last: Run | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      const candidate = port || (await freePort());
      const args = ["-D", data, "-l", logFile, "-w", "-t", String(Math.ceil((options.startTimeoutMs ?? 60_000) / 1000))];
      args.push("-o", `-p ${candidate} -k ${dir} -c listen_addresses=127.0.0.1`, "start");
      last = await run(pgCtl, args, user);
      if (last.code === 0) {
        port = candidate;
        running.add(entry);
        installExitHook();
        return;
      }
      if (port) break;
    }
    throw new Error(`pg_ctl start failed (exit ${last?.code}):\n${last?.output}\n${readLog()}`);
  };
  const readLog = () => {
    try {
      return readFileSync(logFile, "utf8");
    } catch {
      return "";
    }
  };
  const stopServer = async (mode: "fast" | "immediate") => {
    if (!running.has(entry)) return;
    const stopped = await run(pgCtl, ["-D", data, "-m", mode, "-w", "stop"], user);
    if (stopped.code !== 0 && !/Is server running/.test(stopped.output)) throw new Error(`pg_ctl stop failed: ${stopped.output}`);
    running.delete(entry);
  };

  try {
    await start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    get url() {
      return `postgres://postgres@127.0.0.1:${port}/postgres`;
    },
    get port() {
      return port;
    },
    dir,
    log: readLog,
    stop() {
      stopping ??= stopServer("fast").finally(() => rmSync(dir, { recursive: true, force: true }));
      return stopping;
    },
    crash: () => stopServer("immediate"),
    restart: start,
  };
}
