from tests.harness import Harness


def test_task_is_created_claimed_and_completed(stack: Harness) -> None:
    task_id = stack.create()
    assert stack.status(task_id)["state"] == "pending"
    claims = stack.claim()
    assert [c["status"]["taskId"] for c in claims] == [task_id]
    assert claims[0]["status"]["state"] == "running"
    r = stack.call("POST", f"/task/{task_id}/runs/0/completed")
    assert r.status_code == 200, r.body
    assert r.json_body["status"]["state"] == "completed"
