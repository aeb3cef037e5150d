/**
 * The Worker Index: every registered worker by ID and by worker-heap id, in the order they joined.
 * The Register adds and removes workers; the scheduler, the server and monitoring read them.
 * Lookups are O(1); a page costs its length plus the workers before its token, with no sort and
 * no copy of the whole set, so an admin call at 10,000 workers never stalls the loop (ADR 0031).
 */
import { injectable } from "tsyringe";
import type { WorkerRecord } from "@taskflow/core";
import type { OutgoingAssignment, PortLink } from "./worker-ports.js";

/** A worker as the Register and Scheduler keep it. */
export interface WorkerEntry {
  readonly record: WorkerRecord & { running: number };
  /** Its session while one is open (`link.port`). */
  readonly link: PortLink;
  /** Worker heap handle while it has a free slot and takes tasks, else -1. */
  handle: number;
  /** Its id in the worker heap. */
  readonly idx: number;
  /** When it joined, 1, 2, 3 …: the index's order and its page tokens. */
  joinSeq: number;
  lastAssignedSeq: number;
  /** When its session broke; it is declared dead if it does not come back within the grace. */
  disconnectedAt: number;
  /** Assignments made this loop turn, sent in one message. */
  outbox: OutgoingAssignment[];
  /** How often it was told to heartbeat (at its welcome), in ms: `liveness.heartbeatIntervalMs` × its pace. */
  beatMs: number;
  /** Most tasks it holds at once: slots + prefetch. */
  capacity: number;
  /** Assignments sent on the current session, and how many the worker acknowledged. */
  sent: number;
  acked: number;
  /** Since when an assignment waits for acknowledgement; 0 = none waits. */
  unackedSince: number;
}

/** Every registered worker counted by what an operator asks first. */
export interface WorkerSummary {
  total: number;
  alive: number;
  suspect: number;
  draining: number;
  /** Session lost, within its reconnect grace. */
  disconnected: number;
  slots: number;
  /** Tasks the workers hold (running and prefetched). */
  running: number;
  /** In the worker heap: taking tasks, with a free slot. */
  free: number;
  /** The least recent heartbeat (epoch ms) of a connected worker; 0 when none is connected. */
  oldestHeartbeat: number;
}

/** One page of workers, and the join sequence to continue after (0 on the last page). */
export interface WorkerPage {
  readonly entries: WorkerEntry[];
  readonly after: number;
}

@injectable()
export class WorkerIndex {
  /** By ID; a Map iterates in insertion order, which is join order since joinSeq only grows. */
  private readonly byId = new Map<string, WorkerEntry>();
  private readonly byIdx: (WorkerEntry | undefined)[] = [];
  private readonly freeIdx: number[] = [];
  private joinCounter = 0;

  get size(): number {
    return this.byId.size;
  }

  get(workerId: string): WorkerEntry | undefined {
    return this.byId.get(workerId);
  }

  byHeapId(idx: number): WorkerEntry | undefined {
    return this.byIdx[idx];
  }

  entries(): IterableIterator<WorkerEntry> {
    return this.byId.values();
  }

  /** Adds the entry `make` builds from its heap id and join sequence. */
  add(workerId: string, make: (idx: number, joinSeq: number) => WorkerEntry): WorkerEntry {
    const idx = this.freeIdx.length ? this.freeIdx.pop()! : this.byIdx.length;
    const entry = make(idx, ++this.joinCounter);
    this.byIdx[idx] = entry;
    this.byId.set(workerId, entry);
    return entry;
  }

  remove(entry: WorkerEntry): void {
    if (this.byId.get(entry.record.id) !== entry) return;
    this.byId.delete(entry.record.id);
    this.byIdx[entry.idx] = undefined;
    this.freeIdx.push(entry.idx);
  }

  /**
   * Up to `limit` workers that joined after join sequence `after` (0: from the first), in join
   * order. Workers that join meanwhile come after every page already read, so paging lists each
   * worker present from start to end exactly once.
   */
  page(after: number, limit: number): WorkerPage {
    const entries: WorkerEntry[] = [];
    let more = false;
    for (const entry of this.byId.values()) {
      if (entry.joinSeq <= after) continue;
      if (entries.length === limit) {
        more = true;
        break;
      }
      entries.push(entry);
    }
    return { entries, after: more ? entries.at(-1)!.joinSeq : 0 };
  }

  /** The records of the first `limit` workers to join. */
  first(limit: number): WorkerRecord[] {
    const out: WorkerRecord[] = [];
    if (limit <= 0) return out;
    for (const entry of this.byId.values()) {
      if (out.push(entry.record) >= limit) break;
    }
    return out;
  }

  /** Counts over every worker: one pass, no allocation (about 0.1 ms at 10,000 workers). */
  summary(): WorkerSummary {
    const s: WorkerSummary = { total: 0, alive: 0, suspect: 0, draining: 0, disconnected: 0, slots: 0, running: 0, free: 0, oldestHeartbeat: 0 };
    for (const entry of this.byId.values()) {
      const r = entry.record;
      if (r.state === "dead") continue;
      s.total++;
      if (entry.link.port && (s.oldestHeartbeat === 0 || r.lastHeartbeat < s.oldestHeartbeat)) s.oldestHeartbeat = r.lastHeartbeat;
      if (!entry.link.port) s.disconnected++;
      else if (r.state === "alive") s.alive++;
      else if (r.state === "suspect") s.suspect++;
      else s.draining++;
      s.slots += r.slots;
      s.running += r.running;
      if (entry.handle >= 0) s.free++;
    }
    return s;
  }
}
