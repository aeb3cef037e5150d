/** Calls to the control node's dashboard API (same origin). */
import type { ErrorJson } from "@taskflow/monitoring/api";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function parse<T>(res: Response): Promise<T> {
  const body = (await res.json().catch(() => ({ error: res.statusText, code: "" }))) as T | ErrorJson;
  if (!res.ok) throw new ApiError((body as ErrorJson).error || res.statusText, res.status);
  return body as T;
}

export async function getJson<T>(path: string): Promise<T> {
  return parse<T>(await fetch(path, { headers: { accept: "application/json" } }));
}

/** Actions are JSON posts: the server refuses anything else (see checkPost on the server). */
export async function postJson<T>(path: string, body: unknown = {}): Promise<T> {
  return parse<T>(await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }));
}
