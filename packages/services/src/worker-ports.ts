/**
 * Worker ports: how the control plane reaches each worker's open session. The Register
 * connects and disconnects sessions here; anyone may then tell a worker something by its ID
 * (the task lifecycle stops tasks this way) without going through the Register.
 */
import { injectable } from "tsyringe";
import type { WorkerPorts } from "@taskflow/core";

/** What the control plane sends a worker over its open session. */
export interface WorkerSessionPort {
  assign(assignments: readonly OutgoingAssignment[]): void;
  cancel(tasks: readonly { taskId: string; epoch: number }[], reason: string): void;
  drain(): void;
  /** Ends the session from the control side. */
  close(): void;
}

export interface OutgoingAssignment {
  taskId: string;
  epoch: number;
  type: string;
  payload: Uint8Array;
  attempt: number;
  timeoutMs: number;
  /** A task graph's dependent: its dependencies' outcomes, encoded once (`LiveTask.dependencyResults`). */
  dependencyResults?: Uint8Array | undefined;
  /** The task's metadata, for the handler's context; absent when it has none. */
  metadata?: Readonly<Record<string, string>> | undefined;
}

/** A worker's line to its session: `port` while a session is open. Kept by the worker's entry, so the hot path needs no lookup. */
export interface PortLink {
  port: WorkerSessionPort | undefined;
}

@injectable()
export class WorkerPortDirectory implements WorkerPorts {
  private readonly links = new Map<string, PortLink>();

  /** The worker's link, made on first use. */
  link(workerId: string): PortLink {
    let link = this.links.get(workerId);
    if (!link) this.links.set(workerId, (link = { port: undefined }));
    return link;
  }

  /** The worker left the Register: its link goes (a later worker of that ID gets a new one). */
  forget(workerId: string, link: PortLink): void {
    if (this.links.get(workerId) === link) this.links.delete(workerId);
  }

  cancel(workerId: string, taskId: string, epoch: number, reason: string): void {
    this.links.get(workerId)?.port?.cancel([{ taskId, epoch }], reason);
  }
}
