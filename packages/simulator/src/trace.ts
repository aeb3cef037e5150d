/**
 * The trace format: JSON Lines, one event per line, written by a control node with
 * `control.traceFile` and by `taskflow simulate generate`, read by `taskflow simulate`.
 *
 * ```
 * {"e":"header","format":"taskflow-trace","version":1,"source":"node","startedAt":1700000000000}
 * {"e":"submit","at":1700000000012,"id":"…","type":"resize","tenant":"a","priority":0,"expectedDurationMs":40}
 * {"e":"start","at":1700000000015,"id":"…","worker":"w-1","attempt":1}
 * {"e":"finish","at":1700000000061,"id":"…","state":"succeeded","runMs":46}
 * ```
 *
 * A synthetic trace has submits only, each with its `durationMs`; a recorded one gets the run
 * time of a task from its `finish` line. Unknown fields and event kinds are ignored, so the
 * format can grow.
 */
import { DEFAULT_TENANT } from "@taskflow/core";

export const TRACE_FORMAT = "taskflow-trace";
export const TRACE_VERSION = 1;

/** The first line of a trace (optional when reading). */
export interface TraceHeader {
  e: "header";
  format: typeof TRACE_FORMAT;
  version: number;
  /** Who wrote it: "node" (a control node's recording) or "generator". */
  source: string;
  /** Epoch ms the recording or the generated arrivals start at. */
  startedAt: number;
  /** The generator's arguments, when generated. */
  generator?: Record<string, unknown>;
}

/** A task entered the control node: what a policy may look at, and when it arrived. */
export interface TraceSubmit {
  e: "submit";
  /** Epoch ms of the submit. */
  at: number;
  id: string;
  type: string;
  /** @defaultValue "default" */
  tenant?: string;
  /** @defaultValue 0 */
  priority?: number;
  /** @defaultValue 0 */
  expectedDurationMs?: number;
  metadata?: Record<string, string>;
  /** Epoch ms. */
  deadline?: number;
  requiredLabels?: Record<string, string>;
  /** A delayed task: epoch ms it entered the queue (its arrival for the simulator). */
  due?: number;
  /** How long it runs, known for a synthetic trace; a recorded one has it on its finish line. */
  durationMs?: number;
}

export interface TraceStart {
  e: "start";
  at: number;
  id: string;
  worker: string;
  attempt: number;
}

export interface TraceFinish {
  e: "finish";
  at: number;
  id: string;
  state: string;
  /** The last attempt's run time, start to finish, in ms. */
  runMs: number;
}

export type TraceEvent = TraceHeader | TraceSubmit | TraceStart | TraceFinish;

/** One task to replay: its arrival, attributes and run time. */
export interface SimTask {
  /** The trace's task ID. */
  readonly id: string;
  /** Epoch ms it enters the queue. */
  readonly at: number;
  readonly type: string;
  readonly tenant: string;
  readonly priority: number;
  readonly expectedDurationMs: number;
  /** How long a simulated worker runs it. */
  readonly durationMs: number;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly deadline?: number;
  readonly requiredLabels?: Readonly<Record<string, string>>;
}

export interface ParsedTrace {
  readonly header: TraceHeader | undefined;
  /** Tasks in arrival order (ties in trace order). */
  readonly tasks: SimTask[];
  /** Submitted tasks without a run time (no durationMs, never finished in the recording): not replayed. */
  readonly skipped: number;
}

/** Reads a trace's text; throws an Error naming the line of anything that is not a trace event. */
export function parseTrace(text: string): ParsedTrace {
  let header: TraceHeader | undefined;
  const submits: TraceSubmit[] = [];
  const runMs = new Map<string, number>();
  let lineNo = 0;
  for (const line of text.split("\n")) {
    lineNo++;
    const trimmed = line.trim();
    if (!trimmed) continue;
    let event: Partial<TraceEvent> & Record<string, unknown>;
    try {
      event = JSON.parse(trimmed) as typeof event;
    } catch {
      throw new Error(`trace line ${lineNo} is not JSON: ${trimmed.slice(0, 80)}`);
    }
    if (typeof event !== "object" || event === null) throw new Error(`trace line ${lineNo} is not a JSON object`);
    switch (event.e) {
      case "header":
        if (event["format"] !== TRACE_FORMAT) throw new Error(`trace line ${lineNo}: format "${String(event["format"])}" is not ${TRACE_FORMAT}`);
        if (typeof event["version"] !== "number" || event["version"] > TRACE_VERSION) {
          throw new Error(`trace line ${lineNo}: version ${String(event["version"])} is newer than this simulator reads (${TRACE_VERSION})`);
        }
        header = event as TraceHeader;
        break;
      case "submit": {
        const s = event as TraceSubmit;
        if (typeof s.at !== "number" || !Number.isFinite(s.at)) throw new Error(`trace line ${lineNo}: a submit needs "at" (epoch ms)`);
        if (typeof s.type !== "string" || !s.type) throw new Error(`trace line ${lineNo}: a submit needs "type"`);
        if (typeof s.id !== "string") throw new Error(`trace line ${lineNo}: a submit needs "id"`);
        submits.push(s);
        break;
      }
      case "finish": {
        const f = event as TraceFinish;
        if (typeof f.runMs === "number" && f.runMs >= 0) runMs.set(f.id, f.runMs);
        break;
      }
      default:
        // start lines and kinds from a newer writer carry nothing the replay needs.
        break;
    }
  }
  const tasks: SimTask[] = [];
  let skipped = 0;
  for (const s of submits) {
    const durationMs = s.durationMs ?? runMs.get(s.id);
    if (durationMs === undefined || !(durationMs >= 0)) {
      skipped++;
      continue;
    }
    tasks.push({
      id: s.id,
      at: Math.round(s.due && s.due > s.at ? s.due : s.at),
      type: s.type,
      tenant: s.tenant || DEFAULT_TENANT,
      priority: s.priority ?? 0,
      expectedDurationMs: s.expectedDurationMs ?? 0,
      durationMs: Math.round(durationMs),
      ...(s.metadata && { metadata: s.metadata }),
      ...(s.deadline !== undefined && { deadline: s.deadline }),
      ...(s.requiredLabels && { requiredLabels: s.requiredLabels }),
    });
  }
  // Stable: equal arrivals keep the trace's order.
  tasks.sort((a, b) => a.at - b.at);
  return { header, tasks, skipped };
}

/** One trace event as its line (with the newline). */
export function traceLine(event: TraceEvent): string {
  return `${JSON.stringify(event)}\n`;
}
