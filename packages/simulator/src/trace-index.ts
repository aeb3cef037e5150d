/** The trace format, its recorder (`control.traceFile`) and the synthetic generator: no DI, no control plane. */
export {
  TRACE_FORMAT,
  TRACE_VERSION,
  parseTrace,
  traceLine,
  type ParsedTrace,
  type SimTask,
  type TraceEvent,
  type TraceFinish,
  type TraceHeader,
  type TraceStart,
  type TraceSubmit,
} from "./trace.js";
export { TraceRecorder } from "./recorder.js";
export { DEFAULT_TYPES, generateTrace, generateTraceText, parseTypes, type GenerateOptions, type GeneratedType } from "./generate.js";
