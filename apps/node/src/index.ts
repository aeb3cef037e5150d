export { startControl, type ControlNode } from "./control.js";
export { startWorkers, type WorkerNode } from "./worker-node.js";
export { runNode, type RunningNode } from "./node-command.js";
export { loadConfigFile, type LoadedConfig } from "./config-file.js";
export { loadHandlers } from "./handlers.js";
