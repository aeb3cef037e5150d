import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, unlinkSync, writeFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Worker } from "node:worker_threads";
import { HeapAttachError, IndexedHeap } from "./index.js";
import { LAYOUT_VERSION, MAGIC } from "./layout.js";

// Every test gets a fresh segment name; whatever a failing test leaves is unlinked at the end.
const names: string[] = [];
function freshName(tag: string): string {
  const name = `/tf-test-${tag}-${process.pid}-${names.length}`;
  names.push(name);
  return name;
}
after(() => {
  for (const name of names) {
    const file = `/dev/shm${name}`;
    if (existsSync(file)) unlinkSync(file);
  }
});

const isAttachError = (code: number, pattern: RegExp) => (e: unknown) =>
  e instanceof HeapAttachError && e.code === code && pattern.test(e.message);

/** Runs a snippet in a separate Node process with the package's index as `m`; resolves with its stdout. */
function inProcess(body: string, arg: unknown): Promise<string> {
  const url = new URL("./index.js", import.meta.url).href;
  const code = `const m = await import(${JSON.stringify(url)}); const arg = JSON.parse(process.argv[1]); ${body}`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", code, JSON.stringify(arg)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("exit", (status) => (status === 0 ? resolve(out.trim()) : reject(new Error(`child exited ${status}`))));
  });
}

describe("IndexedHeap with backing shm", () => {
  describe("create", () => {
    it("elects one creator; a second create of the name attaches to the same heap", () => {
      const name = freshName("elect");
      const first = IndexedHeap.create({ capacity: 16, backing: "shm", name });
      const second = IndexedHeap.create({ capacity: 16, backing: "shm", name });
      first.push(3, 30, 1, 2);
      assert.equal(second.pop(), 30);
      assert.deepEqual([second.lastKey, second.lastA, second.lastB], [3, 1, 2]);
      assert.deepEqual(first.shared, { backing: "shm", name });
      first.close();
      assert.equal(existsSync(`/dev/shm${name}`), false, "creator's close unlinks the name");
    });

    it("refuses a second create with another capacity", () => {
      const name = freshName("cap");
      const heap = IndexedHeap.create({ capacity: 16, backing: "shm", name });
      assert.throws(() => IndexedHeap.create({ capacity: 32, backing: "shm", name }), isAttachError(9, /capacity 16, not 32/));
      heap.close();
    });

    it("needs a name", () => {
      assert.throws(() => IndexedHeap.create({ capacity: 4, backing: "shm" }), isAttachError(3, /needs a segment name/));
      assert.throws(() => IndexedHeap.create({ capacity: 4, backing: "shm", name: "/a/b" }), isAttachError(3, /invalid shm segment name/));
    });

    it("runs every operation like the sab backing (short model check)", () => {
      const name = freshName("ops");
      const heap = IndexedHeap.create({ capacity: 50, backing: "shm", name });
      const handles = [];
      for (let i = 0; i < 50; i++) handles.push(heap.push(i % 7, i, i, -i));
      assert.throws(() => heap.push(0, 0), (e: unknown) => e instanceof Error && (e as { code?: number }).code === 8);
      for (let i = 0; i < 50; i += 5) assert.ok(heap.remove(handles[i]!));
      assert.ok(heap.update(handles[1]!, -1));
      assert.equal(heap.peek(), 1);
      assert.equal(heap.validate(), null);
      let last = -Infinity;
      let count = 0;
      while (heap.size > 0) {
        heap.pop();
        assert.ok(heap.lastKey >= last);
        last = heap.lastKey;
        count++;
      }
      assert.equal(count, 40);
      assert.equal(heap.has(handles[1]!), false);
      heap.close();
    });
  });

  describe("attach", () => {
    it("says when no segment has the name", () => {
      assert.throws(() => IndexedHeap.attach({ backing: "shm", name: freshName("missing") }), (e: unknown) =>
        isAttachError(5, /no heap segment named/)(e) && (e as HeapAttachError).reason === "TASKFLOW_ERR_HEAP_NOT_FOUND",
      );
    });

    it("says when the segment is too small to be a heap", () => {
      const name = freshName("small");
      writeFileSync(`/dev/shm${name}`, Buffer.alloc(100));
      assert.throws(() => IndexedHeap.attach({ backing: "shm", name }), isAttachError(9, /too small/));
    });

    it("says when the segment is smaller than its header's capacity needs", () => {
      const name = freshName("short");
      const heap = IndexedHeap.create({ capacity: 1000, backing: "shm", name });
      const small = Buffer.alloc(8192);
      new Int32Array(small.buffer, small.byteOffset, 16).set([MAGIC, LAYOUT_VERSION, 1000, 2]);
      heap.close();
      writeFileSync(`/dev/shm${name}`, small);
      assert.throws(() => IndexedHeap.attach({ backing: "shm", name }), isAttachError(9, /too small: 8192 bytes, capacity 1000/));
    });

    it("says when the segment holds another layout version or is not a heap", () => {
      const name = freshName("version");
      const heap = IndexedHeap.create({ capacity: 8, backing: "shm", name });
      const bytes = Buffer.alloc(8192);
      new Int32Array(bytes.buffer, bytes.byteOffset, 16).set([MAGIC, 7, 8, 2]);
      heap.close();
      writeFileSync(`/dev/shm${name}`, bytes);
      assert.throws(() => IndexedHeap.attach({ backing: "shm", name }), isAttachError(9, /layout version 7/));
      const other = freshName("magic");
      const junk = Buffer.alloc(8192);
      new Int32Array(junk.buffer, junk.byteOffset, 16).set([0x12345678, LAYOUT_VERSION, 8, 2]);
      writeFileSync(`/dev/shm${other}`, junk);
      assert.throws(() => IndexedHeap.attach({ backing: "shm", name: other }), isAttachError(9, /not a Taskflow heap/));
    });

    it("gives up on a creator that died before initialising, instead of hanging", () => {
      const sized = freshName("dead-sized");
      writeFileSync(`/dev/shm${sized}`, Buffer.alloc(8192)); // sized, state never set ready
      const t0 = performance.now();
      assert.throws(() => IndexedHeap.attach({ backing: "shm", name: sized }, { initTimeoutMs: 150 }), isAttachError(14, /never initialised/));
      assert.ok(performance.now() - t0 < 2000);
      const empty = freshName("dead-empty");
      writeFileSync(`/dev/shm${empty}`, Buffer.alloc(0)); // died between shm_open and ftruncate
      assert.throws(() => IndexedHeap.create({ capacity: 8, backing: "shm", name: empty }, { initTimeoutMs: 150 }), isAttachError(14, /never sized/));
    });
  });

  describe("normal shutdown", () => {
    it("unlinks the segments a process created when it exits without closing them", async () => {
      const name = freshName("exit");
      const out = await inProcess(
        `const heap = m.IndexedHeap.create({ capacity: 8, backing: "shm", name: arg });
         heap.push(1, 1);
         const fs = await import("node:fs");
         process.stdout.write(String(fs.existsSync("/dev/shm" + arg)) + "\\n");`,
        name,
      );
      assert.equal(out, "true", "the segment existed while the child ran");
      assert.equal(existsSync(`/dev/shm${name}`), false);
    });
  });

  describe("unlink", () => {
    it("removes a leftover name so the next create starts fresh", () => {
      const name = freshName("unlink");
      const old = IndexedHeap.create({ capacity: 8, backing: "shm", name });
      old.push(1, 1);
      assert.equal(IndexedHeap.unlink(name), true);
      assert.equal(IndexedHeap.unlink(name), false);
      const fresh = IndexedHeap.create({ capacity: 8, backing: "shm", name });
      assert.equal(fresh.size, 0);
      assert.equal(old.pop(), 1, "the old mapping still works for those attached");
      fresh.close();
      old.close();
      assert.throws(() => old.pop(), (e: unknown) => e instanceof HeapAttachError && e.reason === "TASKFLOW_ERR_HEAP_CLOSED");
    });
  });

  describe("worker threads", () => {
    it("survive a worker terminated at random moments, also while it holds the lock", async (t) => {
      const name = freshName("terminate");
      const heap = IndexedHeap.create({ capacity: 4096, backing: "shm", name });
      const url = new URL("./index.js", import.meta.url).href;
      try {
        for (let round = 0; round < 8; round++) {
          const worker = new Worker(
            `const { workerData, parentPort } = require("node:worker_threads");
             import(workerData.url).then(({ IndexedHeap }) => {
               const heap = IndexedHeap.attach({ backing: "shm", name: workerData.name });
               parentPort.postMessage("ready");
               for (let i = 0; ; i++) {
                 const h = heap.push(i % 1000, i % 100000);
                 if (i % 3 === 0) heap.update(h, (i * 7) % 1000);
                 if (i % 2 === 0) heap.pop();
                 if (heap.size > 3000) heap.clear();
               }
             });`,
            { eval: true, workerData: { url, name } },
          );
          await new Promise((resolve) => worker.once("message", resolve));
          await sleep(5 + Math.random() * 30);
          await worker.terminate();
          // Must neither hang nor find a broken heap, whether or not the worker held the lock.
          assert.equal(heap.validate(), null);
          heap.push(-1, 7);
          assert.equal(heap.pop(), 7);
        }
        t.diagnostic(`${heap.repairs} of 8 terminations hit the lock holder`);
      } finally {
        heap.close();
      }
    });
  });

  describe("across processes", () => {
    it("hands records to another process and wakes its blocking and async pops", async () => {
      const name = freshName("xproc");
      const heap = IndexedHeap.create({ capacity: 64, backing: "shm", name });
      heap.push(5, 500);
      const child = inProcess(
        `const heap = m.IndexedHeap.attach({ backing: "shm", name: arg });
         const got = [heap.popWait(5000), heap.popWait(5000), await heap.popAsync(5000), await heap.popAsync(30)];
         console.log(JSON.stringify(got));`,
        name,
      );
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      const untilEmpty = async () => {
        const t0 = performance.now();
        while (heap.size > 0 && performance.now() - t0 < 5000) await sleep(5);
      };
      // Push only once the child has drained the heap and is (very likely) asleep in its wait.
      await untilEmpty();
      await sleep(50);
      heap.push(6, 600);
      await untilEmpty();
      await sleep(50);
      heap.push(7, 700);
      assert.deepEqual(JSON.parse(await child), [500, 600, 700, -1]);
      heap.close();
    });
  });
});
