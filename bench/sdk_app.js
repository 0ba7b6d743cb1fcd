// The benchmark's workloads as users of the JavaScript durabletask SDK write them (the
// counterpart of bench/sdk_app.py, with the same arguments and the same lines on stdout):
//
//   NODE_PATH=<dir>/node_modules node bench/sdk_app.js --address HOST:PORT
//       --role both|worker|client [--workload W1a|W1b|W3] [--size N] [--warmup N] [--timeout S]
//
// Inputs of the task chain start at 1: the JS SDK (1.0.0) drops falsy activity inputs and
// results, and the chain of 0 ends with 0.
"use strict";

const { TaskHubGrpcClient, TaskHubGrpcWorker } = require("@dapr/durabletask-js");
const { OrchestrationStatus } = require("@dapr/durabletask-js/orchestration/enum/orchestration-status.enum");

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

const opts = {
  address: option("--address"),
  role: option("--role", "both"),
  workload: option("--workload", "W1a"),
  size: Number(option("--size", "1")),
  warmup: Number(option("--warmup", "0")),
  timeout: Math.floor(Number(option("--timeout", "600"))),
};

let executed = 0;

function step1(ctx, x) {
  executed += 1;
  return x + 1;
}

function step2(ctx, x) {
  executed += 1;
  return x * 2;
}

function step3(ctx, x) {
  executed += 1;
  return x ^ 2;
}

function increment(ctx, x) {
  executed += 1;
  return x + 1;
}

const task_chain = async function* (ctx, x) {
  const r1 = yield ctx.callActivity(step1, x);
  const r2 = yield ctx.callActivity(step2, r1);
  const r3 = yield ctx.callActivity(step3, r2);
  return [r1, r2, r3];
};

const long_chain = async function* (ctx, n) {
  let x = 1; // (from 1: an activity input of 0 arrives as undefined in the JS SDK 1.0.0)
  for (let i = 0; i < n; i++) {
    x = yield ctx.callActivity(increment, x);
  }
  return x - 1;
};

function chainResult(x) {
  return [x + 1, (x + 1) * 2, ((x + 1) * 2) ^ 2];
}

function check(state, expected, what) {
  const status = state ? OrchestrationStatus[state.runtimeStatus] : "NONE";
  if (status !== "COMPLETED") {
    throw new Error(`${what}: ${status}`);
  }
  const output = state.serializedOutput === undefined ? null : JSON.parse(state.serializedOutput);
  if (JSON.stringify(output) !== JSON.stringify(expected)) {
    throw new Error(`${what}: output ${JSON.stringify(output)}, expected ${JSON.stringify(expected)}`);
  }
}

async function run(client) {
  if (opts.workload === "W1a") {
    const latencies = [];
    for (let i = 1; i <= opts.warmup + opts.size; i++) {
      const start = process.hrtime.bigint();
      const id = await client.scheduleNewOrchestration("task_chain", i);
      const state = await client.waitForOrchestrationCompletion(id, true, opts.timeout);
      if (i > opts.warmup) {
        latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
      check(state, chainResult(i), `task_chain(${i})`);
    }
    return { latencies_ms: latencies };
  }
  const start = process.hrtime.bigint();
  if (opts.workload === "W1b") {
    const ids = [];
    for (let i = 1; i <= opts.size; i++) {
      ids.push(await client.scheduleNewOrchestration("task_chain", i));
    }
    const scheduling = Number(process.hrtime.bigint() - start) / 1e9;
    for (let i = 0; i < ids.length; i++) {
      const state = await client.waitForOrchestrationCompletion(ids[i], true, opts.timeout);
      check(state, chainResult(i + 1), `task_chain(${i + 1})`);
    }
    return { elapsed_s: Number(process.hrtime.bigint() - start) / 1e9, scheduling_s: scheduling };
  }
  const id = await client.scheduleNewOrchestration("long_chain", opts.size);
  const state = await client.waitForOrchestrationCompletion(id, true, opts.timeout);
  check(state, opts.size, `long_chain(${opts.size})`);
  return { elapsed_s: Number(process.hrtime.bigint() - start) / 1e9 };
}

function stdinLine() {
  return new Promise((resolve) => process.stdin.once("data", resolve));
}

function stdinEnd() {
  return new Promise((resolve) => {
    process.stdin.on("end", resolve);
    process.stdin.resume();
  });
}

async function main() {
  let worker = null;
  if (opts.role !== "client") {
    worker = new TaskHubGrpcWorker(opts.address);
    worker.addNamedOrchestrator("task_chain", task_chain);
    worker.addNamedOrchestrator("long_chain", long_chain);
    for (const activity of [step1, step2, step3, increment]) {
      worker.addActivity(activity);
    }
    await worker.start();
  }
  if (opts.role === "worker") {
    console.log("READY");
    await stdinEnd();
    await worker.stop();
    console.log(JSON.stringify({ activities: executed }));
    process.exit(0);
  }
  const client = new TaskHubGrpcClient(opts.address);
  console.log("READY");
  await stdinLine();
  const result = await run(client);
  result.activities = executed;
  console.log(JSON.stringify(result));
  if (worker !== null) {
    await worker.stop();
  }
  await client.stop();
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
