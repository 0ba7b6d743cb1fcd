"""Compensation (saga): undo the steps that succeeded when a later step fails.

The trip books a flight, a hotel and a car. Each booking that succeeds registers its
cancellation with a ``wf.Saga``; booking the car fails, so the saga runs the cancellations
newest first: the hotel, then the flight. A failed activity surfaces in the workflow as
``wf.TaskFailedError``; the compensations are ordinary, durable activity calls (retried under
the saga's retry policy), and a worker that takes over mid-compensation goes on from there.

The trip's reference comes from ``ctx.uuid4()``, not ``uuid.uuid4()``: workflow code runs
again on replay, and only the context's helpers give the same value every time.

Run: ``python examples/compensation.py``.
"""

import os
import tempfile
from datetime import timedelta

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'compensation.db')}"
)

runtime = wf.WorkflowRuntime(STORE)


@runtime.activity
def book_flight(ctx, trip: dict) -> str:
    print(f"Booked a flight to {trip['to']} for trip {trip['ref'][:8]}.")
    return "flight-123"


@runtime.activity
def book_hotel(ctx, trip: dict) -> str:
    print(f"Booked a hotel in {trip['to']}.")
    return "hotel-456"


@runtime.activity
def book_car(ctx, trip: dict) -> str:
    raise RuntimeError(f"no cars left in {trip['to']}")


@runtime.activity
def cancel_booking(ctx, booking: str) -> str:
    print(f"Cancelled {booking}.")
    return booking


@runtime.workflow
def trip_workflow(ctx: wf.DaprWorkflowContext, destination: str):
    trip = {"to": destination, "ref": str(ctx.uuid4())}  # the same on every replay
    saga = wf.Saga(
        ctx,
        retry_policy=wf.RetryPolicy(
            first_retry_interval=timedelta(seconds=1), max_number_of_attempts=3
        ),
    )
    booked: list[str] = []
    try:
        for book in (book_flight, book_hotel, book_car):
            booking = yield ctx.call_activity(book, input=trip)
            saga.add_compensation(cancel_booking, input=booking)
            booked.append(booking)
    except wf.TaskFailedError as error:
        cancelled = yield from saga.compensate()
        return {"status": "cancelled", "reason": str(error), "compensated": cancelled}
    return {"status": "booked", "bookings": booked, "ref": trip["ref"]}


def main() -> None:
    with runtime, wf.DaprWorkflowClient(STORE) as client:
        instance_id = client.schedule_new_workflow(trip_workflow, input="Lisbon")
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=30)
        print(f"Workflow {state.runtime_status.name}: {state.serialized_output}")


if __name__ == "__main__":
    main()
