// Pause, resume and terminate through the JavaScript durabletask SDK against treadle serve.
//
//   NODE_PATH=<repo>/.js-sdk/node_modules node js_control.js HOST:PORT start|finish
//
// start: registers js_waiter (waits for the event "go") and js_parent (calls js_waiter as the
// child "jsctl-child"); starts "jsctl-1" (a waiter) and "jsctl-parent", pauses and resumes
// "jsctl-1", reading its status right after each call, then stops its worker, leaving both
// instances running with no worker. Prints "RESULT {after_pause, after_resume}".
// finish: registers js_waiter again and waits for "jsctl-1" to complete. Prints
// "RESULT {status, output}".
// Exits 0 (1 on an error).
"use strict";

const { TaskHubGrpcClient, TaskHubGrpcWorker } = require("@dapr/durabletask-js");
const { OrchestrationStatus } = require("@dapr/durabletask-js/orchestration/enum/orchestration-status.enum");

const [address, mode] = process.argv.slice(2);

const js_waiter = async function* (ctx) {
  return yield ctx.waitForExternalEvent("go");
};

const js_parent = async function* (ctx) {
  return yield ctx.callSubOrchestrator("js_waiter", null, "jsctl-child");
};

async function statusOf(client, id) {
  const state = await client.getOrchestrationState(id, false);
  return OrchestrationStatus[state.runtimeStatus];
}

async function start(client) {
  await client.scheduleNewOrchestration("js_waiter", null, "jsctl-1");
  await client.scheduleNewOrchestration("js_parent", null, "jsctl-parent");
  for (const id of ["jsctl-1", "jsctl-parent"]) {
    await client.waitForOrchestrationStart(id, false, 30);
  }
  await client.suspendOrchestration("jsctl-1");
  const afterPause = await statusOf(client, "jsctl-1");
  await client.resumeOrchestration("jsctl-1");
  const afterResume = await statusOf(client, "jsctl-1");
  await client.waitForOrchestrationStart("jsctl-child", false, 30);
  return { after_pause: afterPause, after_resume: afterResume };
}

async function finish(client) {
  const state = await client.waitForOrchestrationCompletion("jsctl-1", true, 30);
  return {
    status: OrchestrationStatus[state.runtimeStatus],
    output: state.serializedOutput === undefined ? null : JSON.parse(state.serializedOutput),
  };
}

async function main() {
  const worker = new TaskHubGrpcWorker(address);
  worker.addNamedOrchestrator("js_waiter", js_waiter);
  worker.addNamedOrchestrator("js_parent", js_parent);
  await worker.start();
  const client = new TaskHubGrpcClient(address);
  const result = mode === "start" ? await start(client) : await finish(client);
  console.log("RESULT " + JSON.stringify(result));
  await worker.stop();
  await client.stop();
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
