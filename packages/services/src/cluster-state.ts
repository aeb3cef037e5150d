/**
 * GetClusterState's workers: a page of them and a summary of all (ADR 0031). Listing every
 * worker in one answer took seconds at 10,000 workers; a page of at most MAX_WORKER_PAGE costs
 * milliseconds, and the summary answers "how many, in what state, how loaded" without a list.
 */
import { create } from "@bufbuild/protobuf";
import { WorkerSummarySchema, type GetClusterStateRequest, type WorkerInfo, type WorkerSummary as WireSummary } from "@taskflow/proto";
import { workerToWire } from "./convert.js";
import { invalid } from "./validation.js";
import type { WorkerIndex } from "./worker-index.js";

/** Workers in a page when the request names no page_size. */
export const DEFAULT_WORKER_PAGE = 500;
/** Most workers in a page; a larger page_size is INVALID_ARGUMENT. */
export const MAX_WORKER_PAGE = 5000;

/** The response's worker part: this page, the token to the next, and counts over every worker. */
export interface ClusterWorkers {
  workers: WorkerInfo[];
  nextPageToken: string;
  workerSummary: WireSummary;
}

/**
 * Reads the request's paging fields and answers them from `index`.
 * @throws TaskflowError INVALID_ARGUMENT for a page_size past MAX_WORKER_PAGE or a page_token this node did not give out
 */
export function clusterWorkers(index: Pick<WorkerIndex, "page" | "summary">, req: Pick<GetClusterStateRequest, "pageSize" | "pageToken" | "summaryOnly">): ClusterWorkers {
  if (req.pageSize > MAX_WORKER_PAGE) {
    throw invalid(`page_size is ${req.pageSize}; at most ${MAX_WORKER_PAGE} workers a page (follow next_page_token for more, or set summary_only for counts alone)`);
  }
  const after = parsePageToken(req.pageToken);
  const s = index.summary();
  const workerSummary = create(WorkerSummarySchema, {
    total: s.total,
    alive: s.alive,
    suspect: s.suspect,
    draining: s.draining,
    disconnected: s.disconnected,
    slots: BigInt(s.slots),
    running: BigInt(s.running),
    free: s.free,
  });
  if (req.summaryOnly) return { workers: [], nextPageToken: "", workerSummary };
  const page = index.page(after, req.pageSize || DEFAULT_WORKER_PAGE);
  return {
    workers: page.entries.map((e) => workerToWire(e.record)),
    nextPageToken: page.after ? pageToken(page.after) : "",
    workerSummary,
  };
}

/** Tokens are opaque to callers: a prefix and the join sequence of the last worker listed. */
const TOKEN = /^w([1-9]\d{0,14})$/;

function pageToken(after: number): string {
  return `w${after}`;
}

function parsePageToken(token: string): number {
  if (token === "") return 0;
  const m = TOKEN.exec(token);
  if (!m) throw invalid(`page_token "${token.slice(0, 40)}" is not one this node gave out; pass next_page_token of the previous response, or none for the first page`);
  return Number(m[1]);
}
