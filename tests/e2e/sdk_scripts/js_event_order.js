// Events raised in a burst at a JavaScript SDK workflow that continues as new with saveEvents.
//
//   NODE_PATH=<repo>/.js-sdk/node_modules node js_event_order.js HOST:PORT EVENTS RUNS
//
// Registers js_collector, which takes one "item" event per run and continues as new with the
// list so far (saveEvents = true) until it has EVENTS; starts it RUNS times, raising EVENTS
// events (1 to EVENTS) at each right after the start, then the event "go". Prints one JSON line
// "RESULT [{status, output}, ...]" (one per instance), then exits 0 (1 on an error).
//
// The collector never waits for "item" while events may arrive: SDK 1.0.0 drops an event that
// arrives in the same turn as, and after, one that completed a wait for the same name (the
// emptied list of waiters stays behind, and the next event finds no waiter in it, so it is
// neither delivered nor buffered for continueAsNew). So the first run waits for "go" (raised
// after the burst) and every run takes its item only in a turn after the one that delivered
// the events: by then they are buffered, in the order the turn delivered them.
"use strict";

const { TaskHubGrpcClient, TaskHubGrpcWorker } = require("@dapr/durabletask-js");
const { OrchestrationStatus } = require("@dapr/durabletask-js/orchestration/enum/orchestration-status.enum");

const address = process.argv[2];
const events = Number(process.argv[3]);
const runs = Number(process.argv[4]);

const js_collector = async function* (ctx, seen) {
  if (seen.length === 0) {
    yield ctx.waitForExternalEvent("go");
  } else {
    yield ctx.createTimer(ctx.currentUtcDateTime); // the carried events are delivered first
  }
  const item = yield ctx.waitForExternalEvent("item");
  const now = [...seen, item];
  if (now.length === events) {
    return now;
  }
  ctx.continueAsNew(now, true);
  return now;
};

async function main() {
  const worker = new TaskHubGrpcWorker(address);
  worker.addNamedOrchestrator("js_collector", js_collector);
  await worker.start();
  const client = new TaskHubGrpcClient(address);
  const ids = [];
  for (let run = 0; run < runs; run++) {
    const id = await client.scheduleNewOrchestration("js_collector", [], `js-collector-${run}`);
    // from 1: a falsy payload (0) may travel as none at all
    for (let n = 1; n <= events; n++) {
      await client.raiseOrchestrationEvent(id, "item", n);
    }
    await client.raiseOrchestrationEvent(id, "go", true);
    ids.push(id);
  }
  const out = [];
  for (const id of ids) {
    const state = await client.waitForOrchestrationCompletion(id, true, 60);
    out.push({
      status: OrchestrationStatus[state.runtimeStatus],
      output: state.serializedOutput === undefined ? null : JSON.parse(state.serializedOutput),
    });
  }
  console.log("RESULT " + JSON.stringify(out));
  await worker.stop();
  await client.stop();
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
