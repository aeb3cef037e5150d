/**
 * Who may call what: bearer tokens (stored as sha256 hashes) with a role and a tenant, checked by
 * one grpc-js server interceptor before any handler or request decoder runs, and an
 * {@link authorize}-style helper ({@link principalOf}) that handlers ask for the caller.
 * Without tokens in the config every caller is {@link ANONYMOUS}: an admin whose tasks go to the
 * `default` tenant, which is what a node without security config always was.
 * @see docs/adr/0012-security.md
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { ALL_TENANTS, Code, DEFAULT_TENANT, TaskflowError, type AuthRole, type TenantScope, type TokenEntry } from "@taskflow/core";
import { ClusterService, ScheduleService, TaskService, WorkerService } from "@taskflow/proto";
import { statusTrailers } from "@taskflow/proto/grpc";

/** PEM material of the node's TLS, read from the files the config names. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
  requireClientCert: boolean;
}

/** What the control server needs to secure its port; registered as `TOKENS.Security`. */
export interface ServerSecurity {
  /** TLS on the gRPC port; undefined = plaintext. */
  tls: TlsMaterial | undefined;
  /** Accepted tokens; empty = no authentication. */
  tokens: readonly TokenEntry[];
}

/** The authenticated caller of one call. */
export interface Principal {
  role: AuthRole;
  /** The tenant its tasks belong to; "" for {@link ANONYMOUS} (see {@link tenantOf}). */
  tenant: string;
  /** The token's name ("" without authentication). */
  name: string;
  /** A worker token's task types; undefined = any. */
  taskTypes: ReadonlySet<string> | undefined;
  /**
   * What a worker ID is bound to: the token name and, under mTLS, the client certificate's
   * subject. Another identity cannot take a live worker's ID.
   */
  identity: string;
}

/** The caller when the node has no tokens: allowed everything, as before authentication existed. */
export const ANONYMOUS: Principal = Object.freeze({ role: "admin", tenant: "", name: "", taskTypes: undefined, identity: "" });

/** The tenant a caller's tasks belong to: its token's, or `default` without authentication. */
export function tenantOf(principal: Principal): string {
  return principal.tenant || DEFAULT_TENANT;
}

/**
 * Whose tasks a caller may get, list, watch and cancel: a client only its own tenant's; viewers
 * and admins, who operate the cluster (as on the dashboard), every tenant's.
 */
export function scopeOf(principal: Principal): TenantScope {
  return principal.role === "client" ? tenantOf(principal) : ALL_TENANTS;
}

const READERS: readonly AuthRole[] = ["viewer", "client", "admin"];
const CLIENTS: readonly AuthRole[] = ["client", "admin"];

function paths(service: { typeName: string; methods: readonly { name: string }[] }, roles: (name: string) => readonly AuthRole[]) {
  return service.methods.map((m) => [`/${service.typeName}/${m.name}`, roles(m.name)] as const);
}

/**
 * The roles each RPC accepts (admin: all). A viewer reads (get, list, watch, cluster state and
 * events, schedules), a client also submits, cancels and receives results of its tenant's tasks
 * and manages its tenant's schedules, a worker only runs a worker session, and draining a worker
 * is the admin's alone.
 */
export const ROLES_BY_METHOD: ReadonlyMap<string, readonly AuthRole[]> = new Map([
  ...paths(TaskService, (name) => (name === "GetTask" || name === "ListTasks" || name === "WatchTask" ? READERS : CLIENTS)),
  ...paths(WorkerService, () => ["worker", "admin"]),
  ...paths(ClusterService, (name) => (name === "DrainWorker" ? ["admin"] : ["viewer", "admin"])),
  // Schedules as tasks: viewers read, clients also create, pause, resume and delete their tenant's.
  ...paths(ScheduleService, (name) => (name === "GetSchedule" || name === "ListSchedules" ? READERS : CLIENTS)),
]);

/** Health checks answer anyone (load balancers carry no token); they reveal only SERVING or not. */
const OPEN_PREFIX = "/grpc.health.v1.Health/";

/** A fresh random token: 256 bits, base64url, with a prefix that secret scanners can match. */
export function createToken(): string {
  return `tfk_${randomBytes(32).toString("base64url")}`;
}

/** The `hash` to store for a token: `sha256:<hex>`. */
export function hashToken(token: string): string {
  return `sha256:${createHash("sha256").update(token).digest("hex")}`;
}

/** Why a call was refused; the label of `taskflow_auth_failures_total`. */
export type AuthFailure = "missing_token" | "bad_token" | "wrong_role" | "worker_id_taken" | "task_types";

export interface AuthFailureEvent {
  reason: AuthFailure;
  method: string;
  peer: string;
  /** The token's name when it was valid (never the token). */
  name?: string;
}

/** Checks bearer tokens against the hashes in config, in constant time per stored token. */
export class Authenticator {
  private readonly entries: { digest: Buffer; entry: TokenEntry }[];
  private readonly listeners = new Set<(event: AuthFailureEvent) => void>();
  private readonly failures = new Map<AuthFailure, number>();
  /** Calls of each principal, for handlers (`principalOf`); keyed by the request metadata object. */
  private readonly principals = new WeakMap<grpc.Metadata, Principal>();

  constructor(tokens: readonly TokenEntry[]) {
    this.entries = tokens.map((entry) => ({ digest: Buffer.from(entry.hash.slice("sha256:".length), "hex"), entry }));
  }

  /** False when no token is configured: every call is {@link ANONYMOUS}. */
  get enabled(): boolean {
    return this.entries.length > 0;
  }

  /** The entry of a presented token, or undefined. Compares every stored hash, without an early exit. */
  verify(token: string): TokenEntry | undefined {
    const digest = createHash("sha256").update(token).digest();
    let found: TokenEntry | undefined;
    for (const { digest: stored, entry } of this.entries) {
      if (timingSafeEqual(stored, digest) && !found) found = entry;
    }
    return found;
  }

  /** Refused calls so far, by reason. */
  failureCounts(): ReadonlyMap<AuthFailure, number> {
    return this.failures;
  }

  /** Called on every refusal (for the log); returns an unsubscribe function. */
  onFailure(listener: (event: AuthFailureEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Counts and reports a refusal; returns the error to answer with. */
  refuse(event: AuthFailureEvent, error: TaskflowError): TaskflowError {
    this.failures.set(event.reason, (this.failures.get(event.reason) ?? 0) + 1);
    for (const listener of this.listeners) listener(event);
    return error;
  }

  /** The caller of a call the interceptor let through ({@link ANONYMOUS} without authentication). */
  principalOf(call: { metadata: grpc.Metadata }): Principal {
    return this.principals.get(call.metadata) ?? ANONYMOUS;
  }

  /**
   * Who presents `metadata` on a connection with `authContext`, and whether that role may call
   * `method`. Throws UNAUTHENTICATED (no or unknown token) or PERMISSION_DENIED (wrong role).
   */
  authorize(method: string, metadata: grpc.Metadata, authContext: { sslPeerCertificate?: { subject?: unknown } } | null, peer: string): Principal {
    const header = metadata.get("authorization")[0];
    const token = typeof header === "string" && /^bearer /i.test(header) ? header.slice(7).trim() : undefined;
    if (!token) {
      throw this.refuse(
        { reason: "missing_token", method, peer },
        new TaskflowError(Code.UNAUTHENTICATED, "this node requires a bearer token in the authorization metadata (SDK option token, CLI --token or TASKFLOW_TOKEN)"),
      );
    }
    const entry = this.verify(token);
    if (!entry) throw this.refuse({ reason: "bad_token", method, peer }, new TaskflowError(Code.UNAUTHENTICATED, "the bearer token is not valid here"));
    const allowed = ROLES_BY_METHOD.get(method);
    if (entry.role !== "admin" && allowed && !allowed.includes(entry.role)) {
      throw this.refuse(
        { reason: "wrong_role", method, peer, name: entry.name },
        new TaskflowError(Code.PERMISSION_DENIED, `role ${entry.role} may not call ${method.slice(1)}; it needs ${allowed.join(" or ")}`),
      );
    }
    const subject = authContext?.sslPeerCertificate?.subject;
    const cn = subject && typeof subject === "object" ? (subject as { CN?: string }).CN : undefined;
    return {
      role: entry.role,
      tenant: entry.tenant,
      name: entry.name,
      taskTypes: entry.taskTypes && new Set(entry.taskTypes),
      identity: cn ? `token ${entry.name}, certificate CN=${cn}` : `token ${entry.name}`,
    };
  }

  /**
   * The server interceptor: authenticates every call (but health checks) from its metadata, before
   * the handler starts and before any request message is read, and answers a refused call itself.
   */
  readonly interceptor: grpc.ServerInterceptor = (method, call) => {
    if (!this.enabled || method.path.startsWith(OPEN_PREFIX)) return new grpc.ServerInterceptingCall(call);
    const intercepted: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            let principal: Principal;
            try {
              principal = this.authorize(method.path, metadata, call.getAuthContext(), call.getPeer());
            } catch (err) {
              const e = TaskflowError.from(err);
              intercepted.sendStatus({ code: e.code as number as grpc.status, details: e.message, metadata: statusTrailers(e.code, e.message, e.reason, e.metadata) });
              return;
            }
            // The token has done its work; handlers never see it.
            metadata.remove("authorization");
            this.principals.set(metadata, principal);
            nextMetadata(metadata);
          },
        }),
    });
    return intercepted;
  };
}
