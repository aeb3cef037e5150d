import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WorkerState } from "./gen/taskflow/v1/cluster_service_pb.js";
import { TaskState } from "./gen/taskflow/v1/task_pb.js";
import { taskStateName, workerStateName } from "./names.js";

describe("enum names from the descriptors", () => {
  it("names every task and worker state in lower case, and 0 or unknown numbers as before", () => {
    assert.deepEqual(
      [TaskState.QUEUED, TaskState.ASSIGNED, TaskState.RUNNING, TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED].map(taskStateName),
      ["queued", "assigned", "running", "succeeded", "failed", "cancelled"],
    );
    assert.equal(taskStateName(TaskState.UNSPECIFIED), "unspecified");
    assert.equal(taskStateName(99 as TaskState), "unspecified");
    assert.deepEqual([WorkerState.ALIVE, WorkerState.SUSPECT, WorkerState.DEAD, WorkerState.DRAINING].map(workerStateName), ["alive", "suspect", "dead", "draining"]);
    assert.equal(workerStateName(WorkerState.UNSPECIFIED), "unknown");
  });
});
