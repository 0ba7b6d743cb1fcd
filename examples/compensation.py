"""Compensation (saga): undo the steps that succeeded when a later step fails.

The trip books a flight, a hotel and a car. Booking the car fails, so the workflow cancels what
it booked, newest first: the hotel, then the flight. A failed activity surfaces in the workflow
as ``wf.TaskFailedError``; the compensations are ordinary, durable activity calls.

Run: ``python examples/compensation.py``.
"""

import os
import tempfile

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'compensation.db')}"
)

runtime = wf.WorkflowRuntime(STORE)


@runtime.activity
def book_flight(ctx, trip: dict) -> str:
    print(f"Booked a flight to {trip['to']}.")
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
def trip_workflow(ctx: wf.DaprWorkflowContext, trip: dict):
    booked: list[str] = []
    try:
        for book in (book_flight, book_hotel, book_car):
            booked.append((yield ctx.call_activity(book, input=trip)))
    except wf.TaskFailedError as error:
        cancelled = []
        for booking in reversed(booked):
            cancelled.append((yield ctx.call_activity(cancel_booking, input=booking)))
        return {"status": "cancelled", "reason": str(error), "compensated": cancelled}
    return {"status": "booked", "bookings": booked}


def main() -> None:
    with runtime, wf.DaprWorkflowClient(STORE) as client:
        instance_id = client.schedule_new_workflow(trip_workflow, input={"to": "Lisbon"})
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=30)
        print(f"Workflow {state.runtime_status.name}: {state.serialized_output}")


if __name__ == "__main__":
    main()
