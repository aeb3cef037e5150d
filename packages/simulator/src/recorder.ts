/**
 * Records a control node's traffic as a trace (`control.traceFile`): listens to the event bus
 * and appends one line per submit, start and finish. Off — no listener, nothing built per task —
 * unless the key is set. Lines are buffered and written once per event-loop turn.
 */
import { createWriteStream, openSync, type WriteStream } from "node:fs";
import type { ClusterEvent, EventBus, TaskRecord } from "@taskflow/core";
import { TRACE_FORMAT, TRACE_VERSION, traceLine, type TraceSubmit } from "./trace.js";

export class TraceRecorder {
  private readonly out: WriteStream;
  private readonly unsubscribe: () => void;
  /** Tasks submitted and not yet finished: a requeue is not a second submit. */
  private readonly open = new Set<string>();
  private buffer = "";
  private flushScheduled = false;
  private closed = false;
  /** The first write error, if any: recording stops, the node goes on. */
  error: Error | undefined;

  /**
   * Starts appending to `file` (created if missing).
   * @throws the system error when it cannot be opened
   * @param now - the node's clock, for the header.
   */
  constructor(file: string, events: EventBus, now: number) {
    // Opened now, synchronously: a path that cannot be written stops the node's start, naming it.
    this.out = createWriteStream("", { fd: openSync(file, "a") });
    this.out.on("error", (err) => {
      this.error ??= err;
    });
    this.buffer = traceLine({ e: "header", format: TRACE_FORMAT, version: TRACE_VERSION, source: "node", startedAt: now });
    this.unsubscribe = events.subscribe((event) => this.onEvent(event));
  }

  private onEvent(event: ClusterEvent): void {
    if (event.kind !== "task" || this.error) return;
    const rec = event.task;
    switch (rec.state) {
      case "queued":
        if (this.open.has(rec.id)) return;
        this.open.add(rec.id);
        this.write(traceLine(submitOf(rec)));
        return;
      case "running":
        this.write(traceLine({ e: "start", at: event.time, id: rec.id, worker: rec.workerId, attempt: rec.attempt }));
        return;
      case "succeeded":
      case "failed":
      case "cancelled":
        if (!this.open.delete(rec.id)) return;
        this.write(traceLine({ e: "finish", at: event.time, id: rec.id, state: rec.state, runMs: rec.startedAt ? Math.max(0, rec.finishedAt - rec.startedAt) : 0 }));
        return;
      default:
        return;
    }
  }

  private write(line: string): void {
    this.buffer += line;
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (!this.buffer || this.closed) return;
    this.out.write(this.buffer);
    this.buffer = "";
  }

  /** Stops listening and writes what is buffered. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.unsubscribe();
    this.flush();
    this.closed = true;
    await new Promise<void>((resolve) => this.out.end(resolve));
  }
}

function submitOf(rec: TaskRecord): TraceSubmit {
  return {
    e: "submit",
    at: rec.createdAt,
    id: rec.id,
    type: rec.type,
    tenant: rec.tenant,
    priority: rec.priority,
    expectedDurationMs: rec.expectedDurationMs,
    ...(rec.metadata && { metadata: { ...rec.metadata } }),
    ...(rec.deadline !== undefined && { deadline: rec.deadline }),
    ...(Object.keys(rec.requiredLabels).length > 0 && { requiredLabels: { ...rec.requiredLabels } }),
    ...(rec.notBefore > rec.createdAt && { due: rec.notBefore }),
  };
}
