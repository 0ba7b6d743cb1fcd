// A task chain and a fan-out/fan-in through the JavaScript durabletask SDK against treadle serve.
//
//   NODE_PATH=<repo>/.js-sdk/node_modules node js_workflows.js HOST:PORT
//
// The SDK defaults to localhost:4001; the address is passed explicitly. Prints one JSON line
// "RESULT <json>" with each workflow's status name and output, then exits 0 (1 on an error).
"use strict";

const { TaskHubGrpcClient, TaskHubGrpcWorker } = require("@dapr/durabletask-js");
const { whenAll } = require("@dapr/durabletask-js/task");
const { OrchestrationStatus } = require("@dapr/durabletask-js/orchestration/enum/orchestration-status.enum");

const address = process.argv[2];

function js_hello(ctx, name) {
  return `Hello ${name}!`;
}

function js_square(ctx, x) {
  return x * x;
}

const js_sequence = async function* (ctx, cities) {
  const out = [];
  for (const city of cities) {
    out.push(yield ctx.callActivity(js_hello, city));
  }
  return out;
};

const js_fan_out = async function* (ctx, n) {
  const tasks = [];
  // from 1: the JS SDK (1.0.0) drops falsy activity results, so square(0) would come back null
  for (let i = 1; i <= n; i++) {
    tasks.push(ctx.callActivity(js_square, i));
  }
  const results = yield whenAll(tasks);
  return { results, sum: results.reduce((a, b) => a + b, 0) };
};

async function run(client, name, input, id) {
  await client.scheduleNewOrchestration(name, input, id);
  const state = await client.waitForOrchestrationCompletion(id, true, 30);
  return {
    status: OrchestrationStatus[state.runtimeStatus],
    output: state.serializedOutput === undefined ? null : JSON.parse(state.serializedOutput),
  };
}

async function main() {
  const worker = new TaskHubGrpcWorker(address);
  worker.addNamedOrchestrator("js_sequence", js_sequence);
  worker.addNamedOrchestrator("js_fan_out", js_fan_out);
  worker.addActivity(js_hello);
  worker.addActivity(js_square);
  await worker.start();
  const client = new TaskHubGrpcClient(address);
  const sequence = await run(client, "js_sequence", ["Tokyo", "Seattle", "London"], "js-seq-1");
  const fanOut = await run(client, "js_fan_out", 10, "js-fan-1");
  console.log("RESULT " + JSON.stringify({ sequence, fan_out: fanOut }));
  await worker.stop();
  await client.stop();
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
