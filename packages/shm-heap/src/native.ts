/**
 * The one typed door to the N-API addon (`native/shm_heap.cc`). Nothing else touches the
 * native module; its errors (an `Error` with an errno `code` such as `"ENOENT"`) become
 * {@link HeapAttachError}s here.
 */
import { createRequire } from "node:module";
import { GrpcCode, HeapAttachError } from "./errors.js";

/** One mapping of a segment in this process, shared by every heap object of this thread. */
export interface ShmMapping {
  /** Index of the mapping in the addon's per-process table; passed to the hot-path calls. */
  readonly index: number;
  /** The mapping as an ArrayBuffer (not a SharedArrayBuffer: the addon cannot make one on Node 20). */
  readonly buffer: ArrayBuffer;
  /** True when this call created the segment (won the O_EXCL race) and must initialise it. */
  readonly creator: boolean;
}

/** The addon's functions, as the heap uses them. */
export interface ShmBinding {
  open(name: string, bytes: number, create: boolean, timeoutMs: number): ShmMapping;
  /** Takes a free (or dead owner's) liveness slot for the calling thread; -1 when none is left. */
  claimSlot(index: number): number;
  /** 0 while the slot's thread lives; 1 it died, 2 nobody held it: then the caller holds the slot and must release it. */
  probeSlot(index: number, slot: number): number;
  /** Gives back a slot the calling thread holds. */
  releaseSlot(index: number, slot: number): void;
  /** futex wait (shared) on the int32 at `byteOffset` while it equals `expected`. 0 woken, 1 timed out, 2 value differed. */
  wait(index: number, byteOffset: number, expected: number, timeoutMs: number): number;
  /** futex wake (shared): wakes up to `count` waiters. */
  wake(index: number, byteOffset: number, count: number): number;
  /** Like `wait` on a native waiter thread, so the event loop stays free. */
  waitAsync(index: number, byteOffset: number, expected: number, timeoutMs: number): Promise<number>;
  /** shm_unlink; false when the name did not exist. */
  unlink(name: string): boolean;
}

/** The addon's exports are exactly the binding; `loadShmBinding` wraps the calls that can throw. */
type RawAddon = ShmBinding;

let binding: ShmBinding | undefined;

/** Loads the addon once per thread. @throws HeapAttachError when it was not built. */
export function loadShmBinding(): ShmBinding {
  if (binding !== undefined) return binding;
  let raw: RawAddon;
  try {
    raw = createRequire(import.meta.url)("../build/Release/shm_heap.node") as RawAddon;
  } catch (cause) {
    throw new HeapAttachError(
      GrpcCode.FAILED_PRECONDITION,
      'backing "shm" needs the native addon of @taskflow/shm-heap, which is not built: run `npm run build -w @taskflow/shm-heap`',
      { cause, reason: "TASKFLOW_ERR_HEAP_NATIVE" },
    );
  }
  binding = {
    open(name, bytes, create, timeoutMs) {
      try {
        return raw.open(name, bytes, create, timeoutMs);
      } catch (cause) {
        throw toAttachError(cause, name);
      }
    },
    claimSlot: raw.claimSlot,
    probeSlot: raw.probeSlot,
    releaseSlot: raw.releaseSlot,
    wait: raw.wait,
    wake: raw.wake,
    waitAsync: raw.waitAsync,
    unlink(name) {
      try {
        return raw.unlink(name);
      } catch (cause) {
        throw toAttachError(cause, name);
      }
    },
  };
  return binding;
}

function toAttachError(cause: unknown, name: string): HeapAttachError {
  const errno = (cause as { code?: unknown }).code;
  const message = cause instanceof Error ? cause.message : String(cause);
  switch (errno) {
    case "ENOENT":
      return new HeapAttachError(GrpcCode.NOT_FOUND, `no heap segment named ${name} (is its creator running?)`, {
        cause,
        reason: "TASKFLOW_ERR_HEAP_NOT_FOUND",
      });
    case "ETOOSMALL":
      return new HeapAttachError(GrpcCode.FAILED_PRECONDITION, `segment ${name} is too small to be a heap: ${message}`, { cause });
    case "ETIMEDOUT":
      return new HeapAttachError(GrpcCode.UNAVAILABLE, `segment ${name} was never sized by its creator: ${message}`, {
        cause,
        reason: "TASKFLOW_ERR_HEAP_NOT_READY",
      });
    case "EACCES":
      return new HeapAttachError(GrpcCode.FAILED_PRECONDITION, `no permission on segment ${name}: ${message}`, { cause });
    default:
      return new HeapAttachError(GrpcCode.INTERNAL, `shm segment ${name}: ${message}`, { cause });
  }
}
